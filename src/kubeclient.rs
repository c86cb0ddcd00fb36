//! The one Kubernetes client every request goes through: an optional governor rate limit
//! (off by default, as API Priority and Fairness protects the server) and request metrics
//! by verb, resource and code.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::metrics;

/// Client-side request limits (`--kube-client-qps`, `--kube-client-burst`); 0 QPS = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClientLimits {
    pub qps: f64,
    pub burst: u32,
}

impl ClientLimits {
    fn limiter(&self) -> Option<Arc<DefaultDirectRateLimiter>> {
        if self.qps <= 0.0 {
            return None;
        }
        let per_second = NonZeroU32::new(self.qps.ceil() as u32)?;
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(per_second);
        Some(Arc::new(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(burst),
        )))
    }
}

/// Tower layer adding the limiter and metrics.
#[derive(Clone)]
pub struct InstrumentLayer {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl InstrumentLayer {
    pub fn new(limits: ClientLimits) -> Self {
        Self {
            limiter: limits.limiter(),
        }
    }
}

impl<S> Layer<S> for InstrumentLayer {
    type Service = Instrumented<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Instrumented {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The instrumented service.
#[derive(Clone)]
pub struct Instrumented<S> {
    inner: S,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

/// The Kubernetes verb and resource of a request path, for metric labels.
pub fn classify(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("namespaces".to_string(), false),
        [plural] => (plural.to_string(), false),
        [plural, _] => (plural.to_string(), true),
        [plural, _, sub, ..] => (format!("{plural}/{sub}"), true),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Instrumented<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (verb, resource) = classify(req.method(), req.uri());
        let limiter = self.limiter.clone();
        // Service futures do their work when polled, so waiting for the limiter before the
        // first poll delays the request itself.
        let fut = self.inner.call(req);
        Box::pin(async move {
            if let Some(l) = limiter
                && l.check().is_err()
            {
                let waited = Instant::now();
                l.until_ready().await;
                metrics::kube_rate_limit_waited(waited.elapsed().as_secs_f64());
            }
            let start = Instant::now();
            let res = fut.await;
            let code = match &res {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            let m = metrics::get();
            m.kube_requests
                .with_label_values(&[verb, &resource, &code])
                .inc();
            if verb != "watch" {
                m.kube_request_seconds
                    .with_label_values(&[verb])
                    .observe(start.elapsed().as_secs_f64());
            }
            res
        })
    }
}

/// A client for a real cluster (kubeconfig or in-cluster config), instrumented.
/// Connects with the kubeconfig or in-cluster config; every request carries `user_agent`
/// so the API server's audit trail tells one replica's writes from another's, and passes
/// `fence` just before it is sent.
pub async fn connect(
    limits: ClientLimits,
    user_agent: &str,
    fence: &crate::actors::leader::WriteFence,
) -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    if let Ok(value) = http::HeaderValue::from_str(user_agent) {
        config.headers.push((http::header::USER_AGENT, value));
    }
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder
        .with_layer(&fence.layer())
        .with_layer(&InstrumentLayer::new(limits))
        .build())
}

/// An instrumented client over any service (the embedded API server in-process).
pub fn wrap<S, B>(service: S, limits: ClientLimits, namespace: &str) -> kube::Client
where
    S: Service<Request<kube::client::Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    kube::Client::new(
        InstrumentLayer::new(limits).layer(service),
        namespace.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let c = |m: http::Method, u: &str| {
            let (v, r) = classify(&m, &u.parse().unwrap());
            (v, r)
        };
        assert_eq!(
            c(
                http::Method::GET,
                "/api/v1/namespaces/default/pods?watch=true"
            ),
            ("watch", "pods".into())
        );
        assert_eq!(
            c(http::Method::GET, "/api/v1/namespaces/default/pods"),
            ("list", "pods".into())
        );
        assert_eq!(
            c(
                http::Method::PATCH,
                "/apis/sandbox.opensandbox.io/v1alpha1/namespaces/d/pools/p/status"
            ),
            ("patch", "pools/status".into())
        );
        assert_eq!(
            c(http::Method::GET, "/api/v1/namespaces/d"),
            ("get", "namespaces".into())
        );
        assert_eq!(
            c(http::Method::POST, "/apis/x/v1/namespaces/d/leases"),
            ("create", "leases".into())
        );
    }

    #[test]
    fn zero_qps_means_no_limiter() {
        assert!(ClientLimits::default().limiter().is_none());
        assert!(
            ClientLimits {
                qps: 5.0,
                burst: 10
            }
            .limiter()
            .is_some()
        );
    }
}
