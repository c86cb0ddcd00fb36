//! TEMPORARY SHIM
use super::registry::Registry;
use serde_json::{Value, json};
pub fn v3_root(_r: &Registry) -> Value {
    json!({"paths":{}})
}
pub fn v3_group_version(_r: &Registry, _g: &str, _v: &str) -> Option<Value> {
    None
}
