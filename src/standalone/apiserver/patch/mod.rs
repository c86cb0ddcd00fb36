//! Patch strategies: strategic merge and server-side apply.
//!
//! Pure functions over `serde_json::Value`:
//! * [`strategic_merge`] / [`apply_shard_patch`]: strategic merge patch with the built-in
//!   merge-key table ([`lists`]).
//! * [`apply`] / [`record_update`]: server-side apply and managedFields bookkeeping
//!   ([`fieldset`] holds the FieldsV1 sets).
//!
//! How a write path uses them:
//! * `PATCH application/strategic-merge-patch+json` on a built-in kind:
//!   `strategic_merge(&stored, &body, &info.kind)`, then the usual update path.
//! * `PATCH application/apply-patch+yaml`: `parse_apply_body`, `normalize_secret` for Secrets,
//!   then `apply(stored.as_ref(), &body, &opts, lists)` with `BuiltinLists::new(kind)` or
//!   `SchemaLists::new(schema)`; `Err(ApplyError)` maps to a Status via `to_api_error()`.
//! * Every other write (POST, PUT, merge/JSON/strategic PATCH): after computing the new object,
//!   `record_update(old, &mut new, field_manager, api_version, subresource, now, lists)`.
//! * `now` is RFC 3339 with seconds precision (`2026-01-01T00:00:00Z`), as the real server
//!   writes managedFields times.

pub mod apply;
#[cfg(test)]
mod apply_tests;
pub mod fieldset;
pub mod lists;
pub mod strategic;

use base64::Engine;
use serde_json::Value;

pub use apply::{ApplyError, ApplyOptions, Conflict, apply, record_update};
pub use lists::{BuiltinLists, ListSemantics, ListType, PathElement, SchemaLists};
pub use strategic::{apply_shard_patch, strategic_merge};

/// A patch body that cannot be applied.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// Malformed patch or directive (the server answers 400/422 with this text).
    #[error("{0}")]
    Invalid(String),
    /// The body is neither JSON nor YAML.
    #[error("error decoding patch: {0}")]
    Decode(String),
}

/// Parses a server-side apply body (`application/apply-patch+yaml`): JSON or YAML.
pub fn parse_apply_body(bytes: &[u8]) -> Result<Value, PatchError> {
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(_) => {
            let text = std::str::from_utf8(bytes).map_err(|e| PatchError::Decode(e.to_string()))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| PatchError::Decode(e.to_string()))?
        }
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(PatchError::Decode(
            "apply patch body must be a single object".into(),
        ))
    }
}

/// Folds a Secret's `stringData` into base64 `data` (stringData wins), as the real server
/// does on every write.
pub fn normalize_secret(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            data.insert(k, Value::String(encoded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_json_and_yaml_bodies() {
        let j = parse_apply_body(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#).unwrap();
        assert_eq!(j["kind"], "ConfigMap");
        let y = parse_apply_body(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n").unwrap();
        assert_eq!(y["data"]["a"], "1");
        assert!(parse_apply_body(b"- a\n- b\n").is_err());
        assert!(parse_apply_body(b"{: nope").is_err());
    }

    #[test]
    fn secret_string_data_folds_into_data() {
        let mut s =
            json!({"kind":"Secret","data":{"a":"eA==","b":"eA=="},"stringData":{"b":"hello"}});
        normalize_secret(&mut s);
        assert_eq!(
            s,
            json!({"kind":"Secret","data":{"a":"eA==","b":"aGVsbG8="}})
        );
        let mut s = json!({"kind":"Secret","stringData":{"k":"v"}});
        normalize_secret(&mut s);
        assert_eq!(s["data"]["k"], "dg==");
    }
}
