//! Health, SDK metrics events and diagnostics.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::LifecycleState;
use super::error::ApiError;
use super::models::{DiagnosticContent, MetricsEvent};
use super::validate::parse_int;

type State = web::Data<LifecycleState>;
type Result<T> = std::result::Result<T, ApiError>;

const LOG_LINES: usize = 100;
const EVENT_LINES: usize = 50;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy"}))
}

pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

/// `POST /v1/metrics/events`: the SDK's fire-and-forget create report.
pub async fn metrics_event(body: web::Json<MetricsEvent>) -> Result<HttpResponse> {
    if body.event_type != "sandbox.create" {
        return Err(ApiError::validation(
            "eventType: must be \"sandbox.create\"",
        ));
    }
    if body.create_duration_ms < 0 {
        return Err(ApiError::validation("createDurationMs: must be >= 0"));
    }
    tracing::debug!(
        sandbox = body.sandbox_id.as_deref().unwrap_or(""),
        image = body.image.as_deref().unwrap_or(""),
        duration_ms = body.create_duration_ms,
        success = body.success,
        "sdk create event"
    );
    Ok(HttpResponse::NoContent().finish())
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn descriptor(
    id: &str,
    kind: &'static str,
    scope: String,
    lines: Vec<String>,
    truncated: bool,
    warnings: Vec<String>,
) -> DiagnosticContent {
    let mut content = lines.join("\n");
    if !content.is_empty() {
        content.push('\n');
    }
    DiagnosticContent {
        sandbox_id: id.to_string(),
        kind,
        scope,
        delivery: "inline",
        content_type: "text/plain; charset=utf-8",
        content_length: content.len(),
        content,
        truncated,
        warnings,
    }
}

fn legacy_text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Deprecation", "true"))
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

pub async fn logs(state: State, req: HttpRequest, id: web::Path<String>) -> Result<HttpResponse> {
    let bs = state
        .backend
        .find(&id)
        .ok_or_else(|| ApiError::sandbox_not_found(&id))?;
    let Some(scope) = query(&req, "scope") else {
        let tail: i64 = match query(&req, "tail") {
            Some(t) => parse_int("tail", &t)?,
            None => 100,
        };
        if !(1..=10000).contains(&tail) {
            return Err(ApiError::validation("tail: must be between 1 and 10000"));
        }
        let (lines, warnings) = state.backend.logs(&bs, tail).await;
        let mut text = lines.join("\n");
        for w in warnings {
            text.push_str(&format!("\n[warning] {w}"));
        }
        return Ok(legacy_text(text));
    };
    let scope = scope.trim().to_ascii_lowercase();
    if scope != "container" && scope != "all" {
        return Err(ApiError::bad_request(
            "DIAGNOSTICS_SCOPE_UNSUPPORTED",
            format!(
                "Unsupported logs diagnostics scope '{scope}'. Supported scopes: container, all."
            ),
        ));
    }
    let (mut lines, mut warnings) = state.backend.logs(&bs, LOG_LINES as i64 + 1).await;
    let truncated = lines.len() > LOG_LINES;
    if truncated {
        lines.drain(..lines.len() - LOG_LINES);
    }
    if scope == "all" {
        warnings.push(
            "The current backend only contributes sandbox container logs to the all scope.".into(),
        );
    }
    Ok(HttpResponse::Ok().json(descriptor(&id, "logs", scope, lines, truncated, warnings)))
}

pub async fn events(state: State, req: HttpRequest, id: web::Path<String>) -> Result<HttpResponse> {
    let bs = state
        .backend
        .find(&id)
        .ok_or_else(|| ApiError::sandbox_not_found(&id))?;
    let Some(scope) = query(&req, "scope") else {
        let limit: usize = match query(&req, "limit") {
            Some(t) => parse_int("limit", &t)?,
            None => EVENT_LINES,
        };
        if !(1..=500).contains(&limit) {
            return Err(ApiError::validation("limit: must be between 1 and 500"));
        }
        let (lines, _) = state.backend.events(&bs).await;
        return Ok(legacy_text(
            lines.into_iter().take(limit).collect::<Vec<_>>().join("\n"),
        ));
    };
    let scope = scope.trim().to_ascii_lowercase();
    if scope != "runtime" && scope != "all" {
        return Err(ApiError::bad_request(
            "DIAGNOSTICS_SCOPE_UNSUPPORTED",
            format!(
                "Unsupported events diagnostics scope '{scope}'. Supported scopes: runtime, all."
            ),
        ));
    }
    let (mut lines, mut warnings) = state.backend.events(&bs).await;
    let truncated = lines.len() > EVENT_LINES;
    lines.truncate(EVENT_LINES);
    if scope == "all" {
        warnings
            .push("The current backend only contributes runtime events to the all scope.".into());
    }
    Ok(HttpResponse::Ok().json(descriptor(&id, "events", scope, lines, truncated, warnings)))
}
