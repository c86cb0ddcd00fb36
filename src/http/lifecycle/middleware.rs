//! Cross-cutting request handling: request id, CORS, API-key auth and per-key rate limits.

use std::num::NonZeroU32;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{LifecycleState, deadline, forward};

pub const API_KEY_HEADER: &str = "open-sandbox-api-key";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Per-API-key token buckets.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RateLimit {
    pub fn new(per_second: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_second)?;
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(n)),
        })
    }

    /// `Err(seconds to wait)` when `key` is over its quota.
    fn check(&self, key: &str) -> Result<(), u64> {
        self.limiter.check_key(&key.to_string()).map_err(|nu| {
            let wait = nu.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Compares a presented key with the configured one in time independent of where they
/// differ (only the length can be learnt).
pub fn api_key_matches(presented: &[u8], key: &[u8]) -> bool {
    bool::from(presented.ct_eq(key))
}

/// Paths that never need the key: probes, docs and the sandbox proxy.
pub fn auth_exempt(path: &str) -> bool {
    const PREFIXES: &[&str] = &["/health", "/docs", "/redoc", "/openapi.json", "/version"];
    PREFIXES.iter().any(|p| path.starts_with(p)) || is_proxy_path(path)
}

/// `[/v1]/sandboxes/{id}/proxy/{port}[/...]` with a numeric port and no `..`.
pub fn is_proxy_path(path: &str) -> bool {
    if path.contains("..") {
        return false;
    }
    let rest = path.strip_prefix("/v1").unwrap_or(path);
    let Some(rest) = rest.strip_prefix("/sandboxes/") else {
        return false;
    };
    let Some((id, rest)) = rest.split_once('/') else {
        return false;
    };
    let Some(rest) = rest.strip_prefix("proxy/") else {
        return false;
    };
    let port = rest.split('/').next().unwrap_or_default();
    !id.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
}

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

fn cors(headers: &mut header::HeaderMap, origin: Option<&HeaderValue>) {
    let Some(origin) = origin else { return };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("X-Request-ID, Retry-After"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn preflight(req: &ServiceRequest) -> HttpResponse {
    let h = req.headers();
    let mut resp = HttpResponse::Ok();
    let methods = h
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"));
    resp.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods));
    if let Some(v) = h.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        resp.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone()));
    }
    resp.insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
    resp.finish()
}

/// Authenticates and rate-limits; `Err` is the response to send instead.
fn admit(req: &ServiceRequest, state: &LifecycleState) -> Result<(), ApiError> {
    let path = req.path();
    let exempt = auth_exempt(path);
    let presented = req
        .headers()
        .get(API_KEY_HEADER)
        .map(|v| v.as_bytes().to_vec());
    if let Some(key) = state.config.api_key.as_deref()
        && !exempt
    {
        match &presented {
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "MISSING_API_KEY",
                    "Authentication credentials are missing. Provide API key via OPEN-SANDBOX-API-KEY header.",
                ));
            }
            Some(p) if !api_key_matches(p, key.as_bytes()) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_API_KEY",
                    "Authentication credentials are invalid. Check your API key and try again.",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(rl) = &state.rate_limit
        && !path.starts_with("/health")
    {
        let bucket = match (&state.config.api_key, presented) {
            (Some(_), Some(p)) if !exempt => String::from_utf8_lossy(&p).into_owned(),
            // The peer address, not X-Forwarded-For: clients must not pick their bucket.
            _ => req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "unknown".to_string()),
        };
        if let Err(wait) = rl.check(&bucket) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Too many requests; retry later.",
            );
            e.retry_after = Some(wait.max(1));
            return Err(e);
        }
    }
    Ok(())
}

/// A follower's answer to a call the leader must serve; `None` serves it here.
async fn relay_to_leader(req: &mut ServiceRequest, state: &LifecycleState) -> Option<HttpResponse> {
    let leadership = state.leadership.as_ref()?;
    let relayed = req.headers().contains_key(forward::FORWARDED_BY_HEADER);
    match forward::decide(leadership.gate.is_leader(), req.path(), relayed) {
        forward::Decision::Local => None,
        forward::Decision::NotLeader => {
            Some(ApiError::not_leader(&leadership.identity).error_response())
        }
        forward::Decision::Forward => {
            match forward::forward(leadership, req, state.config.max_body_bytes).await {
                Ok(answer) => answer,
                Err(e) => Some(e.error_response()),
            }
        }
    }
}

/// The middleware wrapping every lifecycle route.
pub async fn lifecycle_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let rid = request_id(&req);
    let origin = req.headers().get(header::ORIGIN).cloned();
    let state = req.app_data::<web::Data<LifecycleState>>().cloned();
    let early = if req.method() == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        Some(preflight(&req))
    } else {
        state
            .as_ref()
            .and_then(|s| admit(&req, s).err())
            .map(|e| e.error_response())
    };
    let mut req = req;
    if let Some(state) = &state
        && !is_proxy_path(req.path())
    {
        // The proxy streams bodies of any length to the sandbox; everything else is JSON.
        let timeout = std::time::Duration::from_secs(state.config.body_read_timeout_seconds);
        let payload = req.take_payload();
        req.set_payload(deadline::with_deadline(payload, timeout));
    }
    let relayed = match (early, state.as_ref()) {
        (Some(r), _) => Some(r),
        (None, Some(state)) => relay_to_leader(&mut req, state).await,
        (None, None) => None,
    };
    let mut resp = match relayed {
        Some(r) => req.into_response(r),
        None => next.call(req).await?.map_into_boxed_body(),
    };
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    cors(headers, origin.as_ref());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::{api_key_matches, auth_exempt};

    #[test]
    fn key_comparison() {
        assert!(api_key_matches(b"k3y", b"k3y"));
        for bad in [&b""[..], b"k3", b"k3y ", b"K3y", b"x3y"] {
            assert!(!api_key_matches(bad, b"k3y"), "{bad:?}");
        }
    }

    #[test]
    fn exemptions() {
        for p in [
            "/health",
            "/openapi.json",
            "/sandboxes/id/proxy/8080",
            "/sandboxes/id/proxy/8080/",
            "/v1/sandboxes/id/proxy/443/path",
        ] {
            assert!(auth_exempt(p), "{p}");
        }
        for p in [
            "/proxy/sandboxes/x",
            "/foo/sandboxes/id/proxy/8080",
            "/sandboxes/s1/proxy/8080x/",
            "/sandboxes/s1/proxy/8080/../x",
            "/v1/sandboxes",
            "/v1/sandboxes/id",
        ] {
            assert!(!auth_exempt(p), "{p}");
        }
    }
}
