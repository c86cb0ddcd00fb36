//! SDK API metrics and the request span: requests by route pattern and code, latency,
//! 429s, and a `request` span carrying the request id for every log line of the request.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The header a client may set; one is generated when it is missing.
const REQUEST_ID: &str = "x-request-id";

/// The route pattern, never the raw path, so ids stay out of labels.
fn route_label(req: &ServiceRequest) -> String {
    req.match_pattern()
        .map(|p| pattern_label(&p))
        .unwrap_or_else(|| "unmatched".to_string())
}

/// `/sandboxes/{id}/proxy/{tail:.*}` -> `/sandboxes/:id/proxy/:tail`: braces in label
/// values trip up simple exposition parsers.
pub fn pattern_label(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        let name = after[..close].split(':').next().unwrap_or_default();
        out.push(':');
        out.push_str(name);
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Outermost middleware of the lifecycle API.
pub async fn track(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let route = route_label(&req);
    let method = req.method().as_str().to_string();
    let rid = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    // Inner layers and handlers read the same id from the header.
    if let Ok(v) = HeaderValue::from_str(&rid) {
        req.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), v);
    }
    let span = tracing::info_span!("request", request_id = %rid, method = %method, route = %route);
    let res = next.call(req).instrument(span.clone()).await;
    let code = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let m = super::get();
    m.api_requests
        .with_label_values(&[&route, &method, &code.to_string()])
        .inc();
    m.api_request_seconds
        .with_label_values(&[&route, &method])
        .observe(elapsed);
    let limited = m.api_rate_limited.with_label_values(&[&route]);
    if code == 429 {
        limited.inc();
    }
    span.in_scope(|| tracing::debug!(status = code, seconds = elapsed, "request served"));
    res
}

#[cfg(test)]
mod tests {
    use super::pattern_label;

    #[test]
    fn pattern_labels_have_no_braces() {
        assert_eq!(pattern_label("/v1/sandboxes"), "/v1/sandboxes");
        assert_eq!(pattern_label("/v1/sandboxes/{id}"), "/v1/sandboxes/:id");
        assert_eq!(
            pattern_label("/sandboxes/{id}/proxy/{port}/{tail:.*}"),
            "/sandboxes/:id/proxy/:port/:tail"
        );
        assert_eq!(pattern_label("/x/{broken"), "/x/:broken");
    }
}
