//! TEMPORARY SHIM (replaced by the validation branch)
use super::status::FieldCause;
use serde_json::Value;
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}
pub enum ValidationError {
    UnknownFields(Vec<String>),
    Invalid(Vec<FieldCause>),
}
pub fn validate_custom_resource(
    _s: &Value,
    _o: &mut Value,
    _old: Option<&Value>,
    _m: FieldValidation,
) -> Result<Vec<String>, ValidationError> {
    Ok(vec![])
}
pub fn validate_object_meta(_m: &Value, _n: bool, _k: &str) -> Vec<FieldCause> {
    vec![]
}
pub mod selector {
    use std::collections::BTreeMap;
    #[derive(Clone, Debug)]
    pub struct LabelSelector(Vec<(String, Option<String>, bool)>);
    impl LabelSelector {
        pub fn matches(&self, l: &BTreeMap<String, String>) -> bool {
            self.0.iter().all(|(k, v, eq)| match v {
                None => l.contains_key(k) == *eq,
                Some(v) => (l.get(k) == Some(v)) == *eq,
            })
        }
    }
    pub fn parse_label_selector(s: &str) -> Result<LabelSelector, String> {
        let mut out = vec![];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((k, v)) = part.split_once("!=") {
                out.push((k.trim().into(), Some(v.trim().into()), false));
            } else if let Some((k, v)) = part.split_once('=') {
                out.push((
                    k.trim().into(),
                    Some(v.trim_start_matches('=').trim().into()),
                    true,
                ));
            } else if let Some(k) = part.strip_prefix('!') {
                out.push((k.into(), None, false));
            } else if part.contains(' ') {
                return Err(format!("unable to parse requirement: {part}"));
            } else {
                out.push((part.into(), None, true));
            }
        }
        Ok(LabelSelector(out))
    }
    #[derive(Clone, Debug)]
    pub struct FieldSelector(Vec<(String, String, bool)>);
    impl FieldSelector {
        pub fn fields(&self) -> Vec<&str> {
            self.0.iter().map(|r| r.0.as_str()).collect()
        }
        pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
            self.0
                .iter()
                .all(|(k, v, eq)| (get(k).as_deref() == Some(v.as_str())) == *eq)
        }
    }
    pub fn parse_field_selector(s: &str) -> Result<FieldSelector, String> {
        let mut out = vec![];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((k, v)) = part.split_once("!=") {
                out.push((k.into(), v.into(), false));
            } else if let Some((k, v)) = part.split_once('=') {
                out.push((k.into(), v.trim_start_matches('=').into(), true));
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            }
        }
        Ok(FieldSelector(out))
    }
}
