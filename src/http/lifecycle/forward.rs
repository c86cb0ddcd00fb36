//! Followers hand SDK calls to the leader.
//!
//! Only the leader runs actors and writes, yet every replica behind the Service answers: a
//! follower authenticates the call, then relays it to the SDK API address the leader
//! publishes on its Lease and streams the answer back. Calls wait (bounded) for a leader
//! through a failover instead of failing. A call is retried on the next leader only when
//! the previous target certainly did not act on it: it could not be reached, or it answered
//! that it is not the leader.

use std::time::Duration;

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::ApiError;
use super::proxy::{HOP_BY_HOP, relay_response};
use crate::actors::leader::{LeaderGate, LeaderState};

/// Marks a request relayed by a follower (its value: the follower's identity). A replica
/// that is not the leader answers such a request itself instead of relaying it again.
pub const FORWARDED_BY_HEADER: &str = "x-opensandbox-forwarded-by";
/// Set on the "not the leader" answer, so the relaying follower knows nothing was done.
pub const NOT_LEADER_HEADER: &str = "x-opensandbox-not-leader";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a relayed call may still wait for a leader that lost its lease.
const DEPOSED_GRACE: Duration = Duration::from_secs(2);

/// Besides the hop-by-hop headers, the ones we rebuild. `Host` stays: the leader builds
/// client-facing URLs (the server-proxy endpoint) from it.
const DROP_REQUEST: &[&str] = &["content-length", FORWARDED_BY_HEADER];

/// This replica's place in leader election, as the API needs it.
#[derive(Clone)]
pub struct Leadership {
    pub gate: LeaderGate,
    pub state: watch::Receiver<LeaderState>,
    pub identity: String,
    /// How long a call waits for a reachable leader (a failover) before it fails with 503.
    pub wait: Duration,
}

/// What to do with a request on this replica.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it here.
    Local,
    /// Relay it to the leader.
    Forward,
    /// Relayed to us, but we are not (or no longer) the leader: tell the sender so.
    NotLeader,
}

/// Served by every replica from its own state: probes, documents and the data-plane proxy
/// (it reads the sandbox's pod address from the cache and never writes). These are
/// exactly the paths that need no API key.
fn served_anywhere(path: &str) -> bool {
    super::middleware::auth_exempt(path)
}

/// Where a request goes, given whether we lead and whether a follower relayed it.
pub fn decide(is_leader: bool, path: &str, relayed: bool) -> Decision {
    if is_leader || served_anywhere(path) {
        Decision::Local
    } else if relayed {
        Decision::NotLeader
    } else {
        Decision::Forward
    }
}

fn leader_unavailable(message: String) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER::LEADER_UNAVAILABLE",
        message,
    );
    e.retry_after = Some(1);
    e
}

/// Where to send a call now, or why not yet.
enum Target {
    /// We became the leader while waiting.
    Us,
    Leader(String, String),
    /// Nobody holds the lease, or the holder publishes no address.
    Unknown(String),
}

fn target(state: &LeaderState, gate: &LeaderGate) -> Target {
    if gate.is_leader() {
        return Target::Us;
    }
    match (&state.holder, &state.holder_address) {
        (Some(h), Some(a)) if !state.is_leader => Target::Leader(h.clone(), a.clone()),
        (Some(h), None) if !state.is_leader => Target::Unknown(format!(
            "the leader {h} publishes no SDK API address (is its API enabled?)"
        )),
        _ => Target::Unknown("no replica holds the leader lease".to_string()),
    }
}

/// True once `holder` no longer holds the lease (a frozen or partitioned leader lost it).
fn deposed(state: &LeaderState, holder: &str) -> bool {
    state.holder.as_deref() != Some(holder)
}

/// Runs a relay attempt until it ends or its target has lost the lease for
/// [`DEPOSED_GRACE`]. A leader frozen mid-call would otherwise hold the call until it wakes;
/// once deposed it writes nothing more (its client is fenced), so the caller gets a clear,
/// retryable answer. The grace lets a leader that stepped down gracefully finish its calls.
async fn until_deposed(
    relayed: impl std::future::Future<Output = Attempt>,
    mut state: watch::Receiver<LeaderState>,
    holder: &str,
) -> Attempt {
    let lost = async {
        // An error means the elector is gone: nothing will change any more.
        if state.wait_for(|s| deposed(s, holder)).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(DEPOSED_GRACE).await;
    };
    tokio::select! {
        answer = relayed => answer,
        () = lost => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVER::LEADER_CHANGED",
                format!(
                    "The leader {holder} lost its lease while handling the call; it may not \
                     have been applied: retry"
                ),
            );
            e.retry_after = Some(1);
            Attempt::Answered(e.error_response())
        }
    }
}

/// The outcome of one relay attempt.
enum Attempt {
    Answered(HttpResponse),
    /// The target did not act on the call; try the next leader.
    Retry(String),
}

/// Relays `req` to the leader and returns its answer, or `Ok(None)` when this replica
/// became the leader meanwhile (serve it locally then).
pub async fn forward(
    leadership: &Leadership,
    req: &mut ServiceRequest,
    max_body: usize,
) -> Result<Option<HttpResponse>, ApiError> {
    let deadline = Instant::now() + leadership.wait;
    let body = read_body(req, max_body).await?;
    let mut state = leadership.state.clone();
    let mut last_problem;
    loop {
        state.mark_unchanged();
        let current = state.borrow().clone();
        match target(&current, &leadership.gate) {
            Target::Us => return Ok(None),
            Target::Unknown(why) => last_problem = why,
            Target::Leader(holder, address) => {
                let relayed = attempt(req, &address, &leadership.identity, body.clone());
                match until_deposed(relayed, leadership.state.clone(), &holder).await {
                    Attempt::Answered(resp) => return Ok(Some(resp)),
                    Attempt::Retry(why) => {
                        last_problem = format!("leader {holder} at {address}: {why}");
                        tracing::debug!(%holder, %address, reason = %why, "relay to leader failed");
                    }
                }
            }
        }
        // Wake on a leadership change, or re-try the same target every 200 ms.
        let pause = Instant::now() + Duration::from_millis(200);
        let wake = pause.min(deadline);
        if Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout_at(wake, state.changed()).await;
    }
    Err(leader_unavailable(format!(
        "No leader could take the call within {:?}: {last_problem}",
        leadership.wait
    )))
}

async fn read_body(req: &mut ServiceRequest, max: usize) -> Result<Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("GENERAL::BAD_REQUEST", e.to_string()))?;
        if buf.len() + chunk.len() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "GENERAL::PAYLOAD_TOO_LARGE",
                format!("Request body is larger than {max} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `http://host:port[/base]` -> (`host:port`, base path without a trailing slash).
fn split_address(address: &str) -> Result<(String, String), String> {
    let rest = address
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported leader address {address:?} (want http://host:port)"))?;
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("leader address {address:?} has no host"));
    }
    Ok((authority.to_string(), base.to_string()))
}

async fn attempt(req: &ServiceRequest, address: &str, identity: &str, body: Bytes) -> Attempt {
    let (authority, base) = match split_address(address) {
        Ok(v) => v,
        Err(e) => return Attempt::Retry(e),
    };
    let mut uri = format!("{base}{}", req.path());
    if !req.query_string().is_empty() {
        uri.push('?');
        uri.push_str(req.query_string());
    }
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(&uri)
        .header(FORWARDED_BY_HEADER, identity);
    if !req.headers().contains_key("host") {
        builder = builder.header("host", &authority);
    }
    for (name, value) in req.headers() {
        let n = name.as_str();
        if !HOP_BY_HOP.contains(&n) && !DROP_REQUEST.contains(&n) {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    if let Some(peer) = req.peer_addr() {
        builder = builder.header("x-forwarded-for", peer.ip().to_string());
    }
    let request = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(format!("cannot build the relayed request: {e}")),
    };
    let connect = tokio::net::TcpStream::connect(authority.as_str());
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Attempt::Retry(format!("connect failed: {e}")),
        Err(_) => return Attempt::Retry("connect timed out".to_string()),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(v) => v,
            Err(e) => return Attempt::Retry(format!("handshake failed: {e}")),
        };
    actix_rt::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "leader relay connection ended");
        }
    });
    // From here the leader may have acted on the call: its answer, whatever it is, is final.
    let response = match tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request)).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_canceled() => {
            return Attempt::Retry(format!("the leader closed the connection: {e}"));
        }
        Ok(Err(e)) => {
            return Attempt::Answered(
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "SERVER::LEADER_RELAY_FAILED",
                    format!("The leader failed to answer: {e}"),
                )
                .error_response(),
            );
        }
        Err(_) => {
            return Attempt::Answered(
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "SERVER::LEADER_RELAY_TIMEOUT",
                    "The leader did not answer in time",
                )
                .error_response(),
            );
        }
    };
    if response.headers().contains_key(NOT_LEADER_HEADER) {
        return Attempt::Retry("it is no longer the leader".to_string());
    }
    let head = req.method() == actix_web::http::Method::HEAD;
    Attempt::Answered(relay_response(response, "", head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_deposed_once_the_lease_names_someone_else_or_nobody() {
        let st = |holder: Option<&str>| state(false, holder, None);
        assert!(!deposed(&st(Some("a")), "a"));
        assert!(deposed(&st(Some("b")), "a"));
        assert!(deposed(&st(None), "a"));
    }

    #[test]
    fn the_leader_serves_everything_followers_relay_the_api() {
        assert_eq!(decide(true, "/v1/sandboxes", false), Decision::Local);
        assert_eq!(decide(true, "/v1/sandboxes", true), Decision::Local);
        assert_eq!(decide(false, "/v1/sandboxes", false), Decision::Forward);
        assert_eq!(decide(false, "/pools/p", false), Decision::Forward);
        assert_eq!(decide(false, "/v1/sandboxes", true), Decision::NotLeader);
    }

    #[test]
    fn probes_documents_and_the_data_plane_proxy_are_served_by_any_replica() {
        for path in ["/health", "/openapi.json", "/v1/sandboxes/abc/proxy/8080/x"] {
            assert_eq!(decide(false, path, false), Decision::Local, "{path}");
            assert_eq!(decide(false, path, true), Decision::Local, "{path}");
        }
    }

    #[test]
    fn leader_addresses() {
        assert_eq!(
            split_address("http://10.0.0.7:8080"),
            Ok(("10.0.0.7:8080".to_string(), String::new()))
        );
        assert_eq!(
            split_address("http://[fd00::7]:8080/api/"),
            Ok(("[fd00::7]:8080".to_string(), "/api".to_string()))
        );
        assert!(split_address("https://10.0.0.7:8080").is_err());
        assert!(split_address("http:///x").is_err());
    }

    fn state(is_leader: bool, holder: Option<&str>, address: Option<&str>) -> LeaderState {
        LeaderState {
            is_leader,
            holder: holder.map(str::to_string),
            holder_address: address.map(str::to_string),
            since: None,
        }
    }

    #[test]
    fn targets() {
        let gate = LeaderGate::always();
        assert!(matches!(
            target(&state(false, None, None), &gate),
            Target::Us
        ));
        // A closed gate: the elector never ran, so it is never leader.
        let closed = crate::actors::leader::LeaderGate::never();
        assert!(matches!(
            target(&state(false, Some("b"), Some("http://b:1")), &closed),
            Target::Leader(h, a) if h == "b" && a == "http://b:1"
        ));
        assert!(matches!(
            target(&state(false, Some("b"), None), &closed),
            Target::Unknown(why) if why.contains("publishes no SDK API address")
        ));
        assert!(matches!(
            target(&state(false, None, None), &closed),
            Target::Unknown(why) if why.contains("no replica holds")
        ));
    }
}
