//! The `{code, message}` error envelope every failing route answers with.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// The code of a replica's "I am not the leader" answer (nothing was done; retry elsewhere).
pub const NOT_LEADER: &str = "SERVER::NOT_LEADER";

/// An API failure: status, machine code and human message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 422: the request does not match the schema (FastAPI's validation status).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST", message)
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad_request("SANDBOX::INVALID_PARAMETER", message)
    }

    pub fn sandbox_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "KUBERNETES::SANDBOX_NOT_FOUND",
            format!("Sandbox '{id}' not found"),
        )
    }

    pub fn pool_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "KUBERNETES::POOL_NOT_FOUND",
            format!("Pool '{name}' not found"),
        )
    }

    pub fn not_implemented(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, code, message)
    }

    /// 503: this replica may not write now (it is not, or no longer certainly, the leader).
    pub fn not_leader(identity: &str) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            NOT_LEADER,
            format!("Replica {identity} is not the leader; retry shortly."),
        );
        e.retry_after = Some(1);
        e
    }

    /// 500 for a failed Kubernetes call (`action` like "create sandbox").
    pub fn kube(action: &str, err: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "KUBERNETES::API_ERROR",
            format!("Failed to {action}: {err}"),
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({"code": self.code, "message": self.message});
        if self.status == StatusCode::UNPROCESSABLE_ENTITY {
            // FastAPI clients look for `detail`; the envelope keys ride along.
            body["detail"] =
                json!([{"loc": ["request"], "msg": self.message, "type": "value_error"}]);
        }
        let mut resp = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            resp.insert_header(("Retry-After", s.to_string()));
        }
        if self.code == NOT_LEADER {
            resp.insert_header((super::forward::NOT_LEADER_HEADER, "true"));
        }
        resp.json(body)
    }
}
