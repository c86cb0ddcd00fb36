//! `/pty` sessions (interactive shells over WebSocket).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::files::parse_json;
use super::state::{Shared, lock};
use crate::error::{ApiError, ApiResult, CONTEXT_NOT_FOUND, NOT_SUPPORTED};

pub struct PtySession {
    pub id: String,
    pub cwd: PathBuf,
    pub command: Option<String>,
}

#[derive(Default)]
pub struct PtyRegistry {
    map: Mutex<HashMap<String, Arc<PtySession>>>,
}

#[derive(Deserialize, Default)]
struct CreatePty {
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    command: Option<String>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        CONTEXT_NOT_FOUND,
        format!("pty session {id} not found"),
    )
}

pub async fn create(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let req: CreatePty = if body.iter().all(u8::is_ascii_whitespace) {
        CreatePty::default()
    } else {
        parse_json(&body)?
    };
    let cwd = match req.cwd.filter(|c| !c.is_empty()) {
        Some(raw) => {
            let p = state.resolve(&raw)?;
            std::fs::create_dir_all(&p).map_err(|e| ApiError::runtime(e.to_string()))?;
            p
        }
        None => state.cwd.clone(),
    };
    let id = uuid::Uuid::new_v4().to_string();
    lock(&state.ptys.map).insert(
        id.clone(),
        Arc::new(PtySession {
            id: id.clone(),
            cwd,
            command: req.command,
        }),
    );
    Ok(HttpResponse::Created().json(serde_json::json!({ "session_id": id })))
}

pub async fn status(state: web::Data<Shared>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let s = lock(&state.ptys.map)
        .get(id.as_str())
        .cloned()
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "session_id": s.id, "running": false, "output_offset": 0
    })))
}

pub async fn delete(state: web::Data<Shared>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    lock(&state.ptys.map)
        .remove(id.as_str())
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn attach(
    state: web::Data<Shared>,
    id: web::Path<String>,
    _req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let s = lock(&state.ptys.map)
        .get(id.as_str())
        .cloned()
        .ok_or_else(|| not_found(&id))?;
    let _ = (&s.cwd, &s.command);
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        NOT_SUPPORTED,
        "pty attach not implemented yet",
    ))
}
