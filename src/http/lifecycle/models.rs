//! Wire models (camelCase, null-valued keys omitted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct ImageSpec {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ImageAuth>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct ImageAuth {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
}

#[derive(Deserialize, Clone, Debug, Default)]
pub struct CredentialProxy {
    #[serde(default)]
    pub enabled: bool,
}

/// `POST /sandboxes` body. Unknown fields are ignored, as upstream does.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateSandboxRequest {
    pub image: Option<ImageSpec>,
    pub snapshot_id: Option<String>,
    pub template_id: Option<String>,
    pub platform: Option<PlatformSpec>,
    /// Kept as a number so that huge values get a 400 instead of a type error.
    pub timeout: Option<serde_json::Number>,
    pub resource_limits: Option<BTreeMap<String, String>>,
    pub resource_requests: Option<BTreeMap<String, String>>,
    pub env: Option<BTreeMap<String, Option<String>>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub entrypoint: Option<Vec<String>>,
    pub network_policy: Option<Value>,
    pub credential_proxy: Option<CredentialProxy>,
    pub secure_access: Option<bool>,
    pub volumes: Option<Vec<Value>>,
    pub extensions: Option<BTreeMap<String, String>>,
    pub lifecycle: Option<Value>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_at: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ImageRef {
    pub uri: String,
}

/// `Sandbox` as returned by get/list/patch.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// Set when the sandbox was restored from a snapshot (then `image` is absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    pub status: SandboxStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Always present: the SDK pops it without a default.
    pub entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub created_at: String,
}

/// `CreateSandboxResponse`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateSandboxResponse {
    pub id: String,
    pub status: SandboxStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub created_at: String,
    pub entrypoint: Vec<String>,
}

impl From<Sandbox> for CreateSandboxResponse {
    fn from(s: Sandbox) -> Self {
        Self {
            id: s.id,
            status: s.status,
            metadata: s.metadata,
            platform: s.platform,
            expires_at: s.expires_at,
            created_at: s.created_at,
            entrypoint: s.entrypoint,
        }
    }
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: usize,
    pub page_size: usize,
    pub total_items: usize,
    pub total_pages: usize,
    pub has_next_page: bool,
}

#[derive(Serialize, Clone, Debug)]
pub struct ListSandboxesResponse {
    pub items: Vec<Sandbox>,
    pub pagination: Pagination,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RenewRequest {
    pub expires_at: String,
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RenewResponse {
    pub expires_at: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapacitySpecBody {
    pub buffer_max: i64,
    pub buffer_min: i64,
    pub pool_max: i64,
    pub pool_min: i64,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CreatePoolRequest {
    pub name: String,
    pub template: serde_json::Map<String, Value>,
    pub capacity_spec: CapacitySpecBody,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePoolRequest {
    pub capacity_spec: CapacitySpecBody,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct PoolStatusBody {
    pub total: i32,
    pub allocated: i32,
    pub available: i32,
    pub revision: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolResponse {
    pub name: String,
    pub capacity_spec: CapacitySpecBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PoolStatusBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MetricsEvent {
    pub event_type: String,
    pub create_duration_ms: i64,
    pub success: bool,
    #[serde(default)]
    pub sandbox_id: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticContent {
    pub sandbox_id: String,
    pub kind: &'static str,
    pub scope: String,
    pub delivery: &'static str,
    pub content_type: &'static str,
    pub content: String,
    pub content_length: usize,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
