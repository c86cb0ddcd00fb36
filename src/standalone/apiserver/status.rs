//! API errors rendered as Kubernetes `Status` objects.

use serde_json::{Value, json};

use super::registry::ResourceInfo;

/// One cause of an `Invalid` error, with the field path the real server reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueForbidden`...
    pub reason: String,
    pub message: String,
    /// Dotted path such as `spec.capacitySpec.bufferMin`.
    pub field: String,
}

impl FieldCause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A failed request, as the API server reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(res: Option<&ResourceInfo>, name: &str) -> Value {
    let mut d = json!({ "name": name });
    if let Some(r) = res {
        d["group"] = json!(r.group);
        d["kind"] = json!(r.plural);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        Self {
            details: Some(details(Some(res), name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", res.qualified_name(), name),
            )
        }
    }

    /// A path or resource type the server does not serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        Self {
            details: Some(details(Some(res), name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", res.qualified_name(), name),
            )
        }
    }

    pub fn conflict(res: &ResourceInfo, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(Some(res), name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    res.qualified_name(),
                    name,
                    why
                ),
            )
        }
    }

    /// Stale `resourceVersion` on an update.
    pub fn stale(res: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(res: &ResourceInfo, name: &str, causes: Vec<FieldCause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let message = if summary.len() == 1 {
            format!("{} \"{}\" is invalid: {}", kind_name(res), name, summary[0])
        } else {
            format!(
                "{} \"{}\" is invalid: [{}]",
                kind_name(res),
                name,
                summary.join(", ")
            )
        };
        let mut d = details(Some(res), name);
        d["kind"] = json!(res.kind);
        d["causes"] = Value::Array(
            causes
                .into_iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect(),
        );
        Self {
            details: Some(d),
            ..Self::new(422, "Invalid", message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// History older than the requested resourceVersion is gone.
    pub fn expired(rv: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {rv} ({oldest})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn kind_name(res: &ResourceInfo) -> String {
    if res.group.is_empty() {
        res.kind.clone()
    } else {
        format!("{}.{}", res.kind, res.group)
    }
}

/// A `Status` of success, as DELETE may answer.
pub fn success_status(res: &ResourceInfo, name: &str, uid: Option<&str>) -> Value {
    let mut d = details(Some(res), name);
    if let Some(uid) = uid {
        d["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}
