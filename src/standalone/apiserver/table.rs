//! TEMPORARY SHIM
use super::registry::ResourceInfo;
use serde_json::{Value, json};
#[derive(Clone, Copy, Debug)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}
#[derive(Clone, Debug)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub now: chrono::DateTime<chrono::Utc>,
    pub with_column_definitions: bool,
}
pub fn render_table(_r: &ResourceInfo, o: &[&Value], _t: &TableOptions) -> Value {
    json!({"kind":"Table","rows":o.len()})
}
pub fn parse_table_accept(a: &str) -> bool {
    a.contains("as=Table")
}
pub fn parse_include_object(_v: Option<&str>) -> IncludeObject {
    IncludeObject::Metadata
}
