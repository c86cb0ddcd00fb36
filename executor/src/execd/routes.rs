//! Route table, access-token middleware and the command/session handlers.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::commands::{self, RunCommandRequest};
use super::files::parse_json;
use super::session::{self, RunRequest};
use super::state::Shared;
use super::{dirs, files, metrics, proxy, pty, query, transfer};
use crate::error::{ApiError, ApiResult, CONTEXT_NOT_FOUND, NOT_SUPPORTED};

pub const TOKEN_HEADER: &str = "X-EXECD-ACCESS-TOKEN";

pub fn sse_headers(b: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    b.content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("Connection", "keep-alive"))
        .insert_header(("X-Accel-Buffering", "no"))
}

fn stream_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> HttpResponse {
    sse_headers(&mut HttpResponse::Ok())
        .streaming(ReceiverStream::new(rx).map(Ok::<_, std::io::Error>))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/ping",
        web::get().to(|| async { HttpResponse::Ok().finish() }),
    )
    .route("/metrics", web::get().to(metrics::get))
    .route("/metrics/watch", web::get().to(metrics::watch))
    .route("/command", web::post().to(run_command))
    .route("/command", web::delete().to(interrupt))
    .route("/command/status/{id}", web::get().to(command_status))
    .route("/command/{id}/logs", web::get().to(command_logs))
    .route("/session", web::post().to(create_session))
    .route("/session/{id}/run", web::post().to(run_in_session))
    .route("/session/{id}", web::delete().to(delete_session))
    .route("/files/info", web::get().to(files::info))
    .route("/files", web::delete().to(files::delete))
    .route("/files/permissions", web::post().to(files::permissions))
    .route("/files/mv", web::post().to(files::mv))
    .route("/files/search", web::get().to(files::search))
    .route("/files/replace", web::post().to(files::replace))
    .route("/files/upload", web::post().to(transfer::upload))
    .route("/files/download", web::get().to(transfer::download))
    .route("/directories/list", web::get().to(dirs::list))
    .route("/directories", web::post().to(dirs::create))
    .route("/directories", web::delete().to(dirs::delete))
    .route("/pty", web::post().to(pty::create))
    .route("/pty/{id}", web::get().to(pty::status))
    .route("/pty/{id}", web::delete().to(pty::delete))
    .route("/pty/{id}/ws", web::get().to(pty::attach))
    .route("/code", web::post().to(run_code))
    .route("/code", web::delete().to(interrupt))
    .route("/code/context", web::post().to(code_not_implemented))
    .route("/code/contexts", web::get().to(code_not_implemented))
    .route("/code/contexts", web::delete().to(code_not_implemented))
    .route("/code/contexts/{id}", web::get().to(code_not_implemented))
    .route(
        "/code/contexts/{id}",
        web::delete().to(code_not_implemented),
    )
    .route(
        "/v1/filesystem/{tail:.*}",
        web::route().to(identity_not_supported),
    )
    .route(
        "/v1/isolated/capabilities",
        web::get()
            .to(|| async { HttpResponse::Ok().json(serde_json::json!({"available": false})) }),
    )
    .route(
        "/v1/isolated/{tail:.*}",
        web::route().to(identity_not_supported),
    )
    .service(
        web::resource([
            "/proxy",
            "/proxy/",
            "/proxy/{port}",
            "/proxy/{port}/{tail:.*}",
        ])
        .to(proxy::handle),
    )
    .default_service(web::to(|| async {
        HttpResponse::NotFound()
            .content_type("text/plain")
            .body("404 page not found")
    }));
}

/// Checks `X-EXECD-ACCESS-TOKEN` on every route when a token is configured.
pub async fn auth(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let expected = req
        .app_data::<web::Data<Shared>>()
        .and_then(|s| s.cfg.access_token.clone());
    if let Some(token) = expected {
        let ok = req
            .headers()
            .get(TOKEN_HEADER)
            .is_some_and(|v| v.as_bytes() == token.as_bytes());
        if !ok {
            let resp = HttpResponse::Unauthorized().json(serde_json::json!({
                "error": "Unauthorized: invalid or missing header X-EXECD-ACCESS-TOKEN"
            }));
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

async fn code_not_implemented() -> ApiResult<HttpResponse> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        NOT_SUPPORTED,
        "code interpreting is not implemented by opensandbox-executor",
    ))
}

#[derive(Deserialize, Default)]
struct CodeContext {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Deserialize)]
struct RunCode {
    #[serde(default)]
    context: Option<CodeContext>,
    #[serde(default)]
    code: String,
}

/// `POST /code` without a language or context id runs `code` as a foreground shell
/// command (no Jupyter needed); everything else needs Jupyter and answers 501.
async fn run_code(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let req: RunCode = parse_json(&body)?;
    let ctx = req.context.unwrap_or_default();
    let plain = ctx.id.as_deref().is_none_or(str::is_empty)
        && ctx
            .language
            .as_deref()
            .is_none_or(|l| l.is_empty() || l == "command");
    if !plain {
        return code_not_implemented().await;
    }
    let cmd = RunCommandRequest {
        command: Some(req.code),
        ..Default::default()
    };
    let prepared = commands::prepare(&state, &cmd)?;
    Ok(stream_response(commands::start_foreground(
        &state, prepared,
    )))
}

async fn identity_not_supported() -> ApiResult<HttpResponse> {
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        NOT_SUPPORTED,
        "identity and isolated-session operations are not supported",
    ))
}

async fn run_command(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let req: RunCommandRequest = parse_json(&body)?;
    let prepared = commands::prepare(&state, &req)?;
    let rx = if req.background.unwrap_or(false) {
        commands::start_background(&state, prepared)
    } else {
        commands::start_foreground(&state, prepared)
    };
    Ok(stream_response(rx))
}

async fn interrupt(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let id = query::one(req.query_string(), "id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing_query("id"))?;
    if let Some(rec) = state.commands.get(&id) {
        if !rec.running() {
            return Err(ApiError::runtime(format!(
                "error interruptting code context. command session {id} is not running"
            )));
        }
        commands::interrupt(&rec).await;
        return Ok(HttpResponse::Ok().finish());
    }
    if state.sessions.remove(&id) {
        return Ok(HttpResponse::Ok().finish());
    }
    Err(ApiError::runtime(format!(
        "error interruptting code context. no such session {id}"
    )))
}

async fn command_status(
    state: web::Data<Shared>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let rec = state.commands.get(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            crate::error::INVALID_REQUEST_BODY,
            format!("command not found: {id}"),
        )
    })?;
    let st = super::state::lock(&rec.status).clone();
    Ok(HttpResponse::Ok().json(st))
}

pub const CURSOR_HEADER: &str = "EXECD-COMMANDS-TAIL-CURSOR";

async fn command_logs(
    state: web::Data<Shared>,
    id: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let not_bg = || ApiError::bad_request(format!("command {id} is not running in background"));
    let rec = state.commands.get(&id).ok_or_else(not_bg)?;
    let path = rec.output.clone().ok_or_else(not_bg)?;
    let cursor = match query::one(req.query_string(), "cursor") {
        None => 0,
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid cursor '{c}'")))?,
    };
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::runtime(format!("error reading logs: {e}")))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| ApiError::runtime(e.to_string()))?
        .len();
    let start = cursor.min(size);
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::runtime(e.to_string()))?;
    let len = size - start;
    let body = tokio_util::io::ReaderStream::with_capacity(file.take(len), super::transfer::CHUNK);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((CURSOR_HEADER, size.to_string()))
        .no_chunking(len)
        .streaming(body))
}

#[derive(Deserialize, Default)]
struct CreateSession {
    #[serde(default)]
    cwd: Option<String>,
}

async fn create_session(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let req: CreateSession = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSession::default()
    } else {
        parse_json(&body)?
    };
    let cwd = match req.cwd.filter(|c| !c.is_empty()) {
        Some(raw) => {
            let p = state.resolve(&raw)?;
            std::fs::create_dir_all(&p)
                .map_err(|e| ApiError::runtime(format!("error creating session cwd: {e}")))?;
            p
        }
        None => state.cwd.clone(),
    };
    let env = crate::process::command_env(&state.cfg.envs_file, None);
    let id = state.sessions.create(env, cwd);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "session_id": id })))
}

#[derive(Deserialize)]
struct RunInSession {
    #[serde(default)]
    command: String,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout: Option<i64>,
}

async fn run_in_session(
    state: web::Data<Shared>,
    id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let req: RunInSession = parse_json(&body)?;
    if req.command.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid request, validation error: command is required",
        ));
    }
    if req.timeout.is_some_and(|t| t < 0) {
        return Err(ApiError::bad_request(
            "invalid request, validation error: timeout must be >= 0",
        ));
    }
    let cwd = match req.cwd.filter(|c| !c.is_empty()) {
        Some(raw) => {
            let p = state.resolve(&raw)?;
            if !p.is_dir() {
                return Err(ApiError::bad_request(format!(
                    "invalid request, validation error: cwd {} does not exist",
                    p.display()
                )));
            }
            Some(p)
        }
        None => None,
    };
    let session = state
        .sessions
        .get(&id)
        .ok_or_else(|| ApiError::runtime("error running in session. context not found"))?;
    let scratch = state
        .scratch_dir()
        .map_err(|e| ApiError::runtime(e.to_string()))?;
    let rx = session::start_run(
        scratch,
        session,
        RunRequest {
            command: req.command,
            cwd,
            timeout: req
                .timeout
                .filter(|t| *t > 0)
                .map(|t| std::time::Duration::from_millis(t as u64)),
        },
    )?;
    Ok(stream_response(rx))
}

async fn delete_session(
    state: web::Data<Shared>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if state.sessions.remove(&id) {
        Ok(HttpResponse::Ok().finish())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            CONTEXT_NOT_FOUND,
            format!("session {id} not found"),
        ))
    }
}
