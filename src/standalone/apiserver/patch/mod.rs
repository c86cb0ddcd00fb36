//! TEMPORARY SHIM (replaced by the patch branch)
use serde_json::{Value, json};
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Bad(String),
}
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("conflicts")]
    Conflicts(Vec<String>),
    #[error("{0}")]
    Other(String),
}
impl ApplyError {
    pub fn message(&self) -> String {
        self.to_string()
    }
    pub fn causes(&self) -> Value {
        json!([])
    }
}
pub struct ApplyOptions {
    pub manager: String,
    pub force: bool,
    pub api_version: String,
    pub subresource: Option<String>,
    pub now: String,
}
pub trait ListSemantics {}
pub struct SchemaLists;
impl SchemaLists {
    pub fn new(_: &Value) -> Self {
        SchemaLists
    }
}
impl ListSemantics for SchemaLists {}
pub struct BuiltinLists;
impl BuiltinLists {
    pub fn new(_: &str) -> Self {
        BuiltinLists
    }
}
impl ListSemantics for BuiltinLists {}
pub fn strategic_merge(o: &Value, p: &Value, _k: &str) -> Result<Value, PatchError> {
    let mut o = o.clone();
    json_patch::merge(&mut o, p);
    Ok(o)
}
pub fn normalize_secret(_o: &mut Value) {}
pub fn parse_apply_body(b: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(b).map_err(|e| PatchError::Bad(e.to_string()))
}
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    _o: &ApplyOptions,
    _l: &dyn ListSemantics,
) -> Result<Value, ApplyError> {
    let mut o = live.cloned().unwrap_or(json!({}));
    json_patch::merge(&mut o, applied);
    Ok(o)
}
pub fn record_update(
    _old: Option<&Value>,
    _new: &mut Value,
    _m: &str,
    _a: &str,
    _s: Option<&str>,
    _n: &str,
    _l: &dyn ListSemantics,
) {
}
