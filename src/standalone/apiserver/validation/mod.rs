//! Validation the embedded API server applies to writes, as kube-apiserver does.
//!
//! * [`validate_custom_resource`]: a custom resource against its CRD's structural
//!   `openAPIV3Schema`, in the server's order: prune unknown fields (reported per
//!   [`FieldValidation`]), apply defaults, validate the schema, then evaluate the CEL
//!   `x-kubernetes-validations` rules (skipped, with the server's "some validation rules were not
//!   checked" cause, when the schema pass found a type, enum, required, too-long or too-many
//!   error). On updates, values the update left unchanged are not validated again and failed
//!   rules on unchanged nodes are only warnings (the server's validation ratcheting), so objects
//!   stored under an older schema stay updatable.
//! * [`validate_object_meta`]: `metadata` of every kind (names, labels, annotations, finalizers),
//!   plus the name rules the SDK layer reuses ([`is_qualified_name`], [`is_dns1123_subdomain`],
//!   [`is_valid_label_value`]).
//! * [`selector`]: label and field selectors of list and watch requests, and `metav1.LabelSelector`.
//!
//! Causes carry the server's field paths (`spec.capacitySpec.bufferMin`, `spec.items[0]`) and
//! messages (`Invalid value: -1: spec.replicas in body should be greater than or equal to 0`).
//!
//! CEL support (the `cel` crate 0.15 with its strings, lists and math extensions): `self` is the
//! node (JSON integers are CEL `int`, other numbers `double`, `date-time` strings `timestamp`),
//! `oldSelf` the node of the old object correlated through object fields and map keys (and
//! `x-kubernetes-list-type: map` keys); the standard operators, macros (`has`, `all`, `exists`,
//! `exists_one`, `map`, `filter`), `size`, `matches`, `startsWith`/`endsWith`/`contains`, string
//! and list extension functions. Transition rules (those that reference `oldSelf`) run only on
//! updates where the old object has the node, or always with `optionalOldSelf` (then `oldSelf`
//! is an optional). `message`, `messageExpression`, `reason` and `fieldPath` are honoured.
//! Not supported: the Kubernetes CEL libraries (`url`, `quantity`, `ip`, `cidr`, `semver`,
//! `format`), the cost budget, ratcheting of unchanged invalid values.

pub mod cel;
pub mod meta;
pub mod schema;
pub mod selector;

use serde_json::Value;

use super::status;
use status::FieldCause;

pub use meta::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    validate_object_meta,
};
pub use selector::{FieldSelector, LabelSelector, parse_field_selector, parse_label_selector};

/// The `fieldValidation` query parameter: what to do with fields the schema does not declare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and answer with a warning per field (the server's default).
    #[default]
    Warn,
    /// Reject the request (400).
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter value; `None` for anything else (the server answers 400).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Ignore" => Some(Self::Ignore),
            "Warn" => Some(Self::Warn),
            "Strict" => Some(Self::Strict),
            _ => None,
        }
    }
}

/// Why a custom resource was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `fieldValidation=Strict` and undeclared fields were sent: 400 BadRequest.
    #[error("strict decoding error: {}", unknown_field_list(.0))]
    UnknownFields(Vec<String>),
    /// 422 Invalid with these causes.
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldCause>),
}

fn unknown_field_list(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ValidationError {
    /// The Status message of the 400 for `UnknownFields` (the `Display` text).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Prunes, defaults and validates a custom resource in place against `schema` (the version's
/// `openAPIV3Schema`). `old` is the stored object on updates (for transition rules).
/// Returns the warnings to send (`unknown field "spec.foo"` under `Warn`).
pub fn validate_custom_resource(
    schema: &Value,
    obj: &mut Value,
    old: Option<&Value>,
    mode: FieldValidation,
) -> Result<Vec<String>, ValidationError> {
    let unknown = schema::prune(schema, obj);
    let mut warnings: Vec<String> = match mode {
        FieldValidation::Strict if !unknown.is_empty() => {
            return Err(ValidationError::UnknownFields(unknown));
        }
        FieldValidation::Warn => unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect(),
        _ => Vec::new(),
    };
    schema::apply_defaults(schema, obj);
    let mut causes = schema::validate(schema, obj, old);
    if let Some(blocked) = blocking_cause(&causes) {
        causes.push(blocked);
    } else {
        let (cel_causes, cel_warnings) = cel::validate(schema, obj, old);
        causes.extend(cel_causes);
        warnings.extend(cel_warnings);
    }
    if causes.is_empty() {
        Ok(warnings)
    } else {
        Err(ValidationError::Invalid(causes))
    }
}

/// Schema errors after which CEL rules are not run (type, enum, required, too long, too many):
/// the server then adds one cause saying so instead.
fn blocking_cause(causes: &[FieldCause]) -> Option<FieldCause> {
    const BLOCKING: &[&str] = &[
        REASON_TYPE_INVALID,
        REASON_NOT_SUPPORTED,
        REASON_REQUIRED,
        REASON_TOO_LONG,
        REASON_TOO_MANY,
    ];
    causes
        .iter()
        .any(|c| BLOCKING.contains(&c.reason.as_str()))
        .then(|| {
            invalid(
                "<nil>",
                &Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            )
        })
}

const REASON_INVALID: &str = "FieldValueInvalid";
const REASON_TYPE_INVALID: &str = "FieldValueTypeInvalid";
const REASON_REQUIRED: &str = "FieldValueRequired";
const REASON_NOT_SUPPORTED: &str = "FieldValueNotSupported";
const REASON_DUPLICATE: &str = "FieldValueDuplicate";
const REASON_FORBIDDEN: &str = "FieldValueForbidden";
const REASON_TOO_LONG: &str = "FieldValueTooLong";
const REASON_TOO_MANY: &str = "FieldValueTooMany";

/// A value as the server prints it in a field error: strings quoted, numbers and booleans bare,
/// anything else (null, objects, arrays) as JSON.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => Value::from(s.as_str()).to_string(),
        Value::Number(n) => go_number(n),
        other => other.to_string(),
    }
}

/// Go prints float64 with `%v`: integral values without a fraction.
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

pub(crate) fn invalid(field: &str, value: &Value, detail: &str) -> FieldCause {
    let msg = with_detail(format!("Invalid value: {}", go_value(value)), detail);
    FieldCause::new(REASON_INVALID, field, msg)
}

pub(crate) fn type_invalid(field: &str, value: &Value, detail: &str) -> FieldCause {
    let msg = with_detail(format!("Invalid value: {}", go_value(value)), detail);
    FieldCause::new(REASON_TYPE_INVALID, field, msg)
}

pub(crate) fn required(field: &str, detail: &str) -> FieldCause {
    FieldCause::new(
        REASON_REQUIRED,
        field,
        with_detail("Required value".into(), detail),
    )
}

pub(crate) fn forbidden(field: &str, detail: &str) -> FieldCause {
    FieldCause::new(
        REASON_FORBIDDEN,
        field,
        with_detail("Forbidden".into(), detail),
    )
}

pub(crate) fn duplicate(field: &str, value: &Value) -> FieldCause {
    FieldCause::new(
        REASON_DUPLICATE,
        field,
        format!("Duplicate value: {}", go_value(value)),
    )
}

pub(crate) fn not_supported(field: &str, value: &Value, supported: &[String]) -> FieldCause {
    let mut msg = format!("Unsupported value: {}", go_value(value));
    if !supported.is_empty() {
        let quoted: Vec<String> = supported
            .iter()
            .map(|s| Value::from(s.as_str()).to_string())
            .collect();
        msg = format!("{msg}: supported values: {}", quoted.join(", "));
    }
    FieldCause::new(REASON_NOT_SUPPORTED, field, msg)
}

pub(crate) fn too_long(field: &str, max: usize) -> FieldCause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    FieldCause::new(
        REASON_TOO_LONG,
        field,
        format!("Too long: may not be more than {max} {unit}"),
    )
}

pub(crate) fn too_many(field: &str, actual: usize, max: u64) -> FieldCause {
    let unit = if max == 1 { "item" } else { "items" };
    FieldCause::new(
        REASON_TOO_MANY,
        field,
        format!("Too many: {actual}: must have at most {max} {unit}"),
    )
}

/// `Invalid value: <detail>` without the value (the server omits object and array values).
pub(crate) fn invalid_omitted(field: &str, detail: &str) -> FieldCause {
    FieldCause::new(
        REASON_INVALID,
        field,
        with_detail("Invalid value".into(), detail),
    )
}

/// `Duplicate value` without the value.
pub(crate) fn duplicate_omitted(field: &str) -> FieldCause {
    FieldCause::new(REASON_DUPLICATE, field, "Duplicate value")
}

#[cfg(test)]
mod tests;
