//! TEMPORARY SHIM
use super::registry::Registry;
use serde_json::{Value, json};
#[derive(Clone, Copy)]
pub enum AggregatedVersion {
    V2,
}
pub fn version_info() -> Value {
    json!({"major":"1","minor":"35","gitVersion":"v1.35.0"})
}
pub fn wants_aggregated(_a: &str) -> Option<AggregatedVersion> {
    None
}
pub fn aggregated(_r: &Registry, _core: bool, _f: AggregatedVersion) -> (Value, &'static str) {
    (json!({}), "application/json")
}
pub fn legacy_api_versions(_a: &str) -> Value {
    json!({})
}
pub fn api_group_list(_r: &Registry) -> Value {
    json!({})
}
pub fn api_resource_list(_r: &Registry, _g: &str, _v: &str) -> Option<Value> {
    None
}
