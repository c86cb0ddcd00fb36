//! The `{code, message}` error body shared by every execd route.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const INVALID_REQUEST_BODY: &str = "INVALID_REQUEST_BODY";
pub const MISSING_QUERY: &str = "MISSING_QUERY";
pub const RUNTIME_ERROR: &str = "RUNTIME_ERROR";
pub const INVALID_FILE: &str = "INVALID_FILE";
pub const INVALID_FILE_CONTENT: &str = "INVALID_FILE_CONTENT";
pub const INVALID_FILE_METADATA: &str = "INVALID_FILE_METADATA";
pub const FILE_NOT_FOUND: &str = "FILE_NOT_FOUND";
pub const CONTEXT_NOT_FOUND: &str = "CONTEXT_NOT_FOUND";
pub const NOT_SUPPORTED: &str = "NOT_SUPPORTED";
pub const PATH_NOT_ALLOWED: &str = "PATH_NOT_ALLOWED";

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST_BODY, message)
    }
    pub fn missing_query(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            MISSING_QUERY,
            format!("missing query parameter '{name}'"),
        )
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, RUNTIME_ERROR, message)
    }
    pub fn file_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, FILE_NOT_FOUND, message)
    }
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            code: self.code,
            message: &self.message,
        })
        .unwrap_or_default()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type("application/json; charset=utf-8")
            .body(self.body_bytes())
    }
}

impl From<crate::paths::PathError> for ApiError {
    fn from(e: crate::paths::PathError) -> Self {
        if let crate::paths::PathError::Outside(_) = e {
            return ApiError::new(StatusCode::FORBIDDEN, PATH_NOT_ALLOWED, e.to_string());
        }
        ApiError::bad_request(format!("invalid path: {e}"))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
