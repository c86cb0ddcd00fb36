//! The last leadership check before a write leaves the process.
//!
//! Actors check the [`LeaderGate`] when they decide to write, but a request can wait after
//! that (in the client's queue, behind other requests); a process frozen in between
//! (SIGSTOP, a long GC-like stall, a suspended VM) would send it after waking, when another
//! replica may already lead. The fence sits in the client's service stack and refuses any
//! write other than the Lease's own at the moment it is dispatched, once the gate says this
//! replica no longer leads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower::{BoxError, Layer, Service};

use super::LeaderGate;

/// Shared between the client (built first) and the elector (which provides the gate).
#[derive(Clone, Default)]
pub struct WriteFence(Arc<OnceLock<LeaderGate>>);

impl std::fmt::Debug for WriteFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFence")
            .field("armed", &self.0.get().is_some())
            .finish()
    }
}

impl WriteFence {
    /// From now on writes go out only while `gate` says this replica leads.
    pub fn arm(&self, gate: LeaderGate) {
        let _ = self.0.set(gate);
    }

    /// Whether a request may be sent now.
    pub fn allows(&self, method: &Method, path: &str) -> bool {
        let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !write || is_lease(path) {
            return true;
        }
        self.0.get().is_none_or(LeaderGate::is_leader)
    }

    pub fn layer(&self) -> FenceLayer {
        FenceLayer(self.clone())
    }
}

/// Leases are the elector's business: it writes them to become and stay leader.
fn is_lease(path: &str) -> bool {
    path.starts_with("/apis/coordination.k8s.io/")
}

/// The error of a fenced write.
#[derive(Debug, thiserror::Error)]
#[error("write to {0} refused: this replica no longer leads")]
pub struct Fenced(pub String);

#[derive(Clone)]
pub struct FenceLayer(WriteFence);

impl<S> Layer<S> for FenceLayer {
    type Service = FenceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FenceService {
            inner,
            fence: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FenceService<S> {
    inner: S,
    fence: WriteFence,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for FenceService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let fence = self.fence.clone();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        // The inner future sends nothing until polled: checking at the first poll, after
        // whatever queue or rate limiter sits outside, is as late as this layer can check.
        let fut = self.inner.call(req);
        Box::pin(async move {
            if !fence.allows(&method, &path) {
                return Err(Fenced(path).into());
            }
            fut.await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_lease_writes_of_a_deposed_replica_are_refused() {
        let fence = WriteFence::default();
        let pods = "/api/v1/namespaces/default/pods";
        let lease = "/apis/coordination.k8s.io/v1/namespaces/default/leases/x";
        assert!(fence.allows(&Method::POST, pods), "unarmed: no election");
        fence.arm(LeaderGate::never());
        assert!(!fence.allows(&Method::POST, pods));
        assert!(!fence.allows(&Method::PATCH, pods));
        assert!(!fence.allows(&Method::DELETE, pods));
        assert!(fence.allows(&Method::GET, pods));
        assert!(fence.allows(&Method::PUT, lease));
        let leading = WriteFence::default();
        leading.arm(LeaderGate::always());
        assert!(leading.allows(&Method::POST, pods));
    }

    #[tokio::test]
    async fn a_refused_write_never_reaches_the_server() {
        let server = crate::standalone::apiserver::ApiServer::new();
        let fence = WriteFence::default();
        fence.arm(LeaderGate::never());
        let client = kube::Client::new(
            fence
                .layer()
                .layer(crate::standalone::apiserver::transport::InProcess {
                    core: server.core().clone(),
                    user_agent: None,
                }),
            "default",
        );
        let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, "default");
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.name = Some("a".into());
        let err = cms.create(&Default::default(), &cm).await.unwrap_err();
        assert!(err.to_string().contains("no longer leads"), "{err}");
        assert!(
            cms.list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(server.requests().writes(|_| true), 0);
    }
}
