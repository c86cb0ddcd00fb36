//! Template revision hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// 16 lowercase hex chars (first 8 bytes) of SHA-256 over the canonical JSON of `template`.
///
/// Canonical means object keys sorted at every level and no whitespace, written here rather
/// than relying on `serde_json`'s map ordering, which changes when any crate in the build
/// enables its `preserve_order` feature. The value differs from upstream's (Go struct order),
/// so pods created by the Go controller are seen as an old revision and recreated once.
pub fn revision_hash(template: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(template, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    hex::encode(&digest[..8])
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn is_16_lowercase_hex_chars() {
        let h = revision_hash(&json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(h.len(), 16);
        assert!(
            h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn ignores_key_order_but_not_content() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[2,1]},"b":1}"#).unwrap();
        assert_eq!(revision_hash(&a), revision_hash(&b));
        assert_ne!(revision_hash(&a), revision_hash(&c));
    }

    #[test]
    fn is_sha256_of_compact_sorted_json() {
        let v = json!({"b": "x\"y", "a": [true, null, 1.5]});
        let expected = hex::encode(&Sha256::digest(br#"{"a":[true,null,1.5],"b":"x\"y"}"#)[..8]);
        assert_eq!(revision_hash(&v), expected);
    }

    #[test]
    fn label_change_changes_revision() {
        let a = json!({"metadata": {"labels": {"app": "v1"}}});
        let b = json!({"metadata": {"labels": {"app": "v2"}}});
        assert_ne!(revision_hash(&a), revision_hash(&b));
    }
}
