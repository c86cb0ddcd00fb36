//! Object metadata validation and the name rules of apimachinery's `util/validation`
//! (qualified names, DNS-1123 labels and subdomains, label values), with the server's messages.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::status::FieldCause;
use super::{forbidden, invalid, required, too_long};

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
/// Longest DNS-1123 label / label value / name part.
const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
/// Sum of the lengths of all annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn anchored(fmt: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{fmt})$")).ok()
}

type Pattern = LazyLock<Option<Regex>>;

/// The formats are constants of this module, so the `None` arm is never taken.
fn full_match(re: &Pattern, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

static QUALIFIED_NAME_RE: Pattern = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE_RE: Pattern = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static DNS1123_LABEL_RE: Pattern = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: Pattern = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT));
static DNS1035_LABEL_RE: Pattern = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));

/// `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`, spaced exactly as the server does.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut s = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{ex}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Errors of a qualified name (`[prefix/]name`, as label and annotation keys and finalizers are).
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return vec!["prefix part must be non-empty".to_string()];
            }
            let prefix_errs = dns1123_subdomain_errors(prefix);
            if !prefix_errs.is_empty() {
                return prefix_errs
                    .into_iter()
                    .map(|e| format!("prefix part {e}"))
                    .collect();
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX)));
    }
    if !full_match(&QUALIFIED_NAME_RE, name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Errors of a DNS-1123 subdomain (most object names).
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > SUBDOMAIN_MAX {
        errs.push(max_len_error(SUBDOMAIN_MAX));
    }
    if !full_match(&DNS1123_SUBDOMAIN_RE, value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Errors of a DNS-1123 label (namespace names).
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX {
        errs.push(max_len_error(LABEL_MAX));
    }
    if !full_match(&DNS1123_LABEL_RE, value) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Errors of a DNS-1035 label (service names).
pub fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX {
        errs.push(max_len_error(LABEL_MAX));
    }
    if !full_match(&DNS1035_LABEL_RE, value) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Errors of a label value (may be empty).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX {
        errs.push(max_len_error(LABEL_MAX));
    }
    if !full_match(&LABEL_VALUE_RE, value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn joined(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// A qualified name (label key, annotation key, finalizer); the error joins the messages with `; `.
pub fn is_qualified_name(value: &str) -> Result<(), String> {
    joined(qualified_name_errors(value))
}

/// A DNS-1123 subdomain (at most 253 characters).
pub fn is_dns1123_subdomain(value: &str) -> Result<(), String> {
    joined(dns1123_subdomain_errors(value))
}

/// A DNS-1123 label (at most 63 characters).
pub fn is_dns1123_label(value: &str) -> Result<(), String> {
    joined(dns1123_label_errors(value))
}

/// A label value (at most 63 characters, may be empty).
pub fn is_valid_label_value(value: &str) -> Result<(), String> {
    joined(label_value_errors(value))
}

/// The name rule of a kind: DNS-1123 label for namespaces, DNS-1035 label for services,
/// DNS-1123 subdomain otherwise (custom resources included).
fn name_errors(kind: &str, name: &str, prefix: bool) -> Vec<String> {
    let name = if prefix {
        mask_trailing_dash(name)
    } else {
        name.to_string()
    };
    match kind {
        "Namespace" => dns1123_label_errors(&name),
        "Service" => dns1035_label_errors(&name),
        _ => dns1123_subdomain_errors(&name),
    }
}

/// A generateName prefix may end in `-`: the server checks it as if the random suffix followed.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let cut = name.len().saturating_sub(2);
        format!("{}a", name.get(..cut).unwrap_or(""))
    } else {
        name.to_string()
    }
}

fn str_field<'a>(meta: &'a Value, key: &str) -> &'a str {
    meta.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Validates `metadata` as `ValidateObjectMeta` does; causes carry `metadata.*` paths.
pub fn validate_object_meta(meta: &Value, namespaced: bool, kind: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    validate_names(meta, kind, &mut causes);
    validate_namespace(meta, namespaced, &mut causes);
    if let Some(g) = meta.get("generation").and_then(Value::as_i64)
        && g < 0
    {
        causes.push(invalid(
            "metadata.generation",
            &Value::from(g),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        causes.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        causes.extend(validate_annotations(ann, "metadata.annotations"));
    }
    if let Some(fins) = meta.get("finalizers").and_then(Value::as_array) {
        causes.extend(validate_finalizers(fins, "metadata.finalizers"));
    }
    causes
}

fn validate_names(meta: &Value, kind: &str, causes: &mut Vec<FieldCause>) {
    let name = str_field(meta, "name");
    let generate_name = str_field(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_errors(kind, generate_name, true) {
            causes.push(invalid(
                "metadata.generateName",
                &Value::from(generate_name),
                &msg,
            ));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            causes.push(required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_errors(kind, name, false) {
            causes.push(invalid("metadata.name", &Value::from(name), &msg));
        }
    }
}

fn validate_namespace(meta: &Value, namespaced: bool, causes: &mut Vec<FieldCause>) {
    let ns = str_field(meta, "namespace");
    match (namespaced, ns.is_empty()) {
        (true, true) => causes.push(required("metadata.namespace", "")),
        (true, false) => {
            for msg in dns1123_label_errors(ns) {
                causes.push(invalid("metadata.namespace", &Value::from(ns), &msg));
            }
        }
        (false, false) => causes.push(forbidden("metadata.namespace", "not allowed on this type")),
        (false, true) => {}
    }
}

/// Label keys must be qualified names, values label values; the field is the map itself.
pub fn validate_labels(labels: &serde_json::Map<String, Value>, field: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    for (k, v) in labels {
        for msg in qualified_name_errors(k) {
            causes.push(invalid(field, &Value::from(k.as_str()), &msg));
        }
        let value = v.as_str().unwrap_or("");
        for msg in label_value_errors(value) {
            causes.push(invalid(field, &Value::from(value), &msg));
        }
    }
    causes
}

/// Annotation keys (checked lower-cased) must be qualified names; the total size is bounded.
pub fn validate_annotations(ann: &serde_json::Map<String, Value>, field: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let mut total = 0usize;
    for (k, v) in ann {
        for msg in qualified_name_errors(&k.to_lowercase()) {
            causes.push(invalid(field, &Value::from(k.as_str()), &msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    causes
}

fn validate_finalizers(fins: &[Value], field: &str) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    for f in fins {
        let name = f.as_str().unwrap_or("");
        for msg in qualified_name_errors(name) {
            causes.push(invalid(field, &Value::from(name), &msg));
        }
    }
    let has = |n: &str| fins.iter().any(|f| f.as_str() == Some(n));
    if has("orphan") && has("foregroundDeletion") {
        causes.push(invalid(
            field,
            &Value::Array(fins.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    fn meta_errs(meta: Value, kind: &str) -> Vec<(String, String, String)> {
        validate_object_meta(&meta, true, kind)
            .into_iter()
            .map(|c| (c.field, c.reason, c.message))
            .collect()
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "a",
            "MyName",
            "my.name",
            "123-abc",
            "example.com/x",
            "a/b_c",
            &"x".repeat(63),
        ] {
            assert_eq!(is_qualified_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            is_qualified_name("bad key!"),
            Err(NAME_PART_REGEX.to_string())
        );
        assert_eq!(
            is_qualified_name("/x"),
            Err("prefix part must be non-empty".into())
        );
        assert_eq!(
            is_qualified_name("x/"),
            Err(format!("name part must be non-empty; {NAME_PART_REGEX}"))
        );
        assert_eq!(
            is_qualified_name(&"x".repeat(64)),
            Err("name part must be no more than 63 characters".into())
        );
        let e = is_qualified_name("Example.com/x").unwrap_err();
        assert!(
            e.starts_with("prefix part a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        let e = is_qualified_name("a/b/c").unwrap_err();
        assert!(e.starts_with("a qualified name must consist of"), "{e}");
        assert!(e.ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
    }

    #[test]
    fn subdomains_labels_and_values() {
        assert!(is_dns1123_subdomain("a.b-c.d").is_ok());
        assert!(is_dns1123_subdomain("A").is_err());
        assert!(is_dns1123_subdomain("-a").is_err());
        assert!(is_dns1123_subdomain("").is_err());
        assert_eq!(
            is_dns1123_subdomain(&"a".repeat(254)).unwrap_err(),
            "must be no more than 253 characters"
        );
        assert!(is_dns1123_label("a.b").is_err());
        assert!(is_dns1123_label("abc-1").is_ok());
        assert!(is_valid_label_value("").is_ok());
        assert!(is_valid_label_value("My_value.1").is_ok());
        assert!(is_valid_label_value("_x").is_err());
        assert_eq!(
            is_valid_label_value(&"v".repeat(64)).unwrap_err(),
            "must be no more than 63 characters"
        );
    }

    #[test]
    fn name_required_unless_generate_name() {
        let errs = meta_errs(json!({"namespace": "default"}), "Pool");
        assert_eq!(
            errs,
            vec![(
                "metadata.name".into(),
                "FieldValueRequired".into(),
                "Required value: name or generateName is required".into()
            )]
        );
        assert!(
            meta_errs(
                json!({"namespace": "default", "generateName": "demo-"}),
                "Pool"
            )
            .is_empty()
        );
        let errs = meta_errs(
            json!({"namespace": "default", "generateName": "Demo-"}),
            "Pool",
        );
        assert_eq!(errs[0].0, "metadata.generateName");
    }

    #[test]
    fn name_rules_per_kind() {
        let errs = meta_errs(json!({"name": "Demo", "namespace": "default"}), "Pool");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "metadata.name");
        assert_eq!(
            errs[0].2,
            "Invalid value: \"Demo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert!(meta_errs(json!({"name": "a.b", "namespace": "default"}), "Pool").is_empty());
        let ns = validate_object_meta(&json!({"name": "a.b"}), false, "Namespace");
        assert_eq!(ns.len(), 1);
        assert!(ns[0].message.contains("RFC 1123 label"));
        assert!(validate_object_meta(&json!({"name": "1svc"}), true, "Service").len() > 1);
    }

    #[test]
    fn namespace_scope() {
        let errs =
            validate_object_meta(&json!({"name": "x", "namespace": "default"}), false, "Node");
        assert_eq!(errs[0].message, "Forbidden: not allowed on this type");
        let errs = validate_object_meta(&json!({"name": "x"}), true, "Pod");
        assert_eq!(errs[0].field, "metadata.namespace");
        assert_eq!(errs[0].message, "Required value");
    }

    #[test]
    fn label_errors() {
        let errs = meta_errs(
            json!({"name": "x", "namespace": "d", "labels": {"bad key!": "ok", "good": "bad value!"}}),
            "Pool",
        );
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].0, "metadata.labels");
        assert_eq!(errs[0].1, "FieldValueInvalid");
        assert_eq!(
            errs[0].2,
            format!("Invalid value: \"bad key!\": {NAME_PART_REGEX}")
        );
        assert!(
            errs[1].2.starts_with(
                "Invalid value: \"bad value!\": a valid label must be an empty string"
            )
        );
    }

    #[test]
    fn annotation_errors() {
        let errs = meta_errs(
            json!({"name": "x", "namespace": "d", "annotations": {"Example.COM/Key": "v", "a b": "v"}}),
            "Pool",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "metadata.annotations");
        let big = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let errs = meta_errs(
            json!({"name": "x", "namespace": "d", "annotations": {"k": big}}),
            "Pool",
        );
        assert_eq!(
            errs,
            vec![(
                "metadata.annotations".into(),
                "FieldValueTooLong".into(),
                "Too long: may not be more than 262144 bytes".into()
            )]
        );
    }

    #[test]
    fn finalizer_errors() {
        let errs = meta_errs(
            json!({"name": "x", "namespace": "d", "finalizers": ["sandbox.opensandbox.io/x", "bad name"]}),
            "Pool",
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "metadata.finalizers");
        assert!(
            errs[0]
                .2
                .starts_with("Invalid value: \"bad name\": name part")
        );
        let errs = meta_errs(
            json!({"name": "x", "namespace": "d", "finalizers": ["orphan", "foregroundDeletion"]}),
            "Pool",
        );
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn generation_must_not_be_negative() {
        let errs = meta_errs(
            json!({"name": "x", "namespace": "d", "generation": -1}),
            "Pool",
        );
        assert_eq!(
            errs[0].2,
            "Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
