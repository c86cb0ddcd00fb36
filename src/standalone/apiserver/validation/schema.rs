//! Structural-schema pruning, defaulting and OpenAPI validation of custom resources.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde_json::{Map, Value};

use super::status::FieldCause;
use super::{
    duplicate, go_number, invalid, not_supported, required, too_long, too_many, type_invalid,
};

/// `ObjectMeta` fields a client may send; anything else under `metadata` is pruned.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub(crate) fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` as a schema (`true` is an empty schema; `false` and absent are `None`).
pub(crate) fn additional(schema: &Value) -> Option<&Value> {
    match schema.get("additionalProperties") {
        Some(Value::Bool(true)) => Some(&EMPTY_SCHEMA),
        Some(s @ Value::Object(_)) => Some(s),
        _ => None,
    }
}

static EMPTY_SCHEMA: Value = Value::Null;

pub(crate) fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

fn int_or_string(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-int-or-string")
}

// ---------------------------------------------------------------- pruning

/// Removes fields the schema does not declare; returns their paths (`spec.foo`, `metadata.bar`).
/// The root keeps `apiVersion`, `kind` and the `ObjectMeta` fields of `metadata`.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_object(obj, schema, "", true, &mut unknown);
    // The server reports unknown metadata fields first (it sets metadata aside before pruning).
    unknown.sort_by_key(|p| !p.starts_with("metadata."));
    unknown
}

fn prune_object(
    value: &mut Value,
    schema: &Value,
    path: &str,
    embedded: bool,
    out: &mut Vec<String>,
) {
    let Value::Object(map) = value else { return };
    let props = properties(schema);
    let addl = additional(schema);
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let p = child(path, &k);
        if embedded && (k == "apiVersion" || k == "kind") {
            continue;
        }
        if embedded && k == "metadata" {
            if let Some(meta) = map.get_mut(&k) {
                prune_meta(meta, &p, out);
            }
            continue;
        }
        let sub = props.and_then(|ps| ps.get(&k)).or(addl);
        match (sub, map.get_mut(&k)) {
            (Some(sub), Some(v)) => prune_node(v, sub, &p, out),
            _ if preserve => {}
            _ => {
                map.remove(&k);
                out.push(p);
            }
        }
    }
}

fn prune_node(value: &mut Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema.is_null() {
        return; // additionalProperties: true keeps everything
    }
    match value {
        Value::Object(_) => {
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            prune_object(value, schema, path, embedded, out);
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for (i, item) in list.iter_mut().enumerate() {
                    prune_node(item, item_schema, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

fn prune_meta(meta: &mut Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(map) = meta else { return };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unknown {
        map.remove(&k);
        out.push(child(path, &k));
    }
}

// ---------------------------------------------------------------- defaulting

/// Applies `default`s top-down (so defaults inside defaulted objects apply too). A null for a
/// non-nullable field takes the default, or is dropped when there is none; nullable nulls stay.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_node(obj, schema);
}

fn default_node(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => default_object(map, schema),
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for item in list.iter_mut() {
                    if item.is_null()
                        && !nullable(item_schema)
                        && let Some(d) = item_schema.get("default")
                    {
                        *item = d.clone();
                    }
                    default_node(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn default_object(map: &mut Map<String, Value>, schema: &Value) {
    let props = properties(schema);
    if let Some(props) = props {
        for (k, prop) in props {
            default_field(map, k, prop);
        }
    }
    if let Some(addl) = additional(schema).filter(|a| !a.is_null()) {
        let keys: Vec<String> = map
            .keys()
            .filter(|k| props.is_none_or(|p| !p.contains_key(*k)))
            .cloned()
            .collect();
        for k in keys {
            default_field(map, &k, addl);
        }
    }
}

fn default_field(map: &mut Map<String, Value>, key: &str, prop: &Value) {
    let absent_or_null = match map.get(key) {
        None => true,
        Some(Value::Null) => !nullable(prop),
        Some(_) => false,
    };
    if absent_or_null {
        match prop.get("default") {
            Some(d) => {
                map.insert(key.to_string(), d.clone());
            }
            None => {
                map.remove(key);
            }
        }
    }
    if let Some(v) = map.get_mut(key) {
        default_node(v, prop);
    }
}

// ---------------------------------------------------------------- validation

/// Validates the whole object against the schema; `metadata` only for `name`/`generateName`
/// constraints the schema may declare (the rest is [`super::validate_object_meta`]'s job).
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut out = Vec::new();
    let Some(map) = obj.as_object() else {
        validate_node(obj, schema, "", old, &mut out);
        return out;
    };
    // metadata is the server's: only the names are checked against the schema.
    let meta_schema = properties(schema).and_then(|p| p.get("metadata"));
    if let Some(meta_schema) = meta_schema {
        validate_meta_names(map.get("metadata"), meta_schema, &mut out);
    }
    if old.is_some_and(|o| o == obj) {
        return out;
    }
    let skip = meta_schema.map(|_| "metadata");
    check_object_fields(map, schema, "", old, skip, &mut out);
    check_combinators(obj, schema, "", &mut out);
    out
}

fn validate_meta_names(meta: Option<&Value>, meta_schema: &Value, out: &mut Vec<FieldCause>) {
    let (Some(meta), Some(props)) = (meta, properties(meta_schema)) else {
        return;
    };
    for key in ["name", "generateName"] {
        if let (Some(v), Some(s)) = (meta.get(key), props.get(key)) {
            validate_node(v, s, &child("metadata", key), None, out);
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(v: &Value, t: &str) -> bool {
    match (t, json_type(v)) {
        ("number", "integer") => true,
        (t, actual) => t == actual,
    }
}

fn type_error(path: &str, actual: &str, expected: &str) -> FieldCause {
    type_invalid(
        path,
        &Value::from(actual),
        &format!("{path} in body must be of type {expected}: \"{actual}\""),
    )
}

/// `old` is the correlated node of the stored object on updates: an unchanged node is not
/// validated again (ratcheting), so objects stored under an older schema stay updatable.
fn validate_node(v: &Value, s: &Value, path: &str, old: Option<&Value>, out: &mut Vec<FieldCause>) {
    if old.is_some_and(|o| o == v) {
        return;
    }
    if !check_type(v, s, path, out) {
        return;
    }
    if v.is_null() {
        return;
    }
    check_format(v, s, path, out);
    check_enum(v, s, path, out);
    if let Value::Number(n) = v {
        check_number(v, n, s, path, out);
    }
    match v {
        Value::String(text) => check_string(v, text, s, path, out),
        Value::Array(list) => check_array(list, s, path, old, out),
        Value::Object(map) => check_object(map, s, path, old, out),
        _ => {}
    }
    check_combinators(v, s, path, out);
}

/// False when the node has the wrong type (nothing else is checked below it).
fn check_type(v: &Value, s: &Value, path: &str, out: &mut Vec<FieldCause>) -> bool {
    let actual = json_type(v);
    if v.is_null() {
        if nullable(s) {
            return true;
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            out.push(type_error(path, actual, t));
            return false;
        }
        return true;
    }
    if int_or_string(s) {
        if actual == "integer" || actual == "string" {
            return true;
        }
        out.push(type_error(path, actual, "integer"));
        out.push(type_error(path, actual, "string"));
        out.push(invalid(
            path,
            &Value::from(""),
            &format!("{path} in body must match at least one schema in anyOf"),
        ));
        return false;
    }
    match s.get("type").and_then(Value::as_str) {
        Some(t) if !type_matches(v, t) => {
            out.push(type_error(path, actual, t));
            false
        }
        _ => true,
    }
}

fn check_format(v: &Value, s: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let Some(format) = s.get("format").and_then(Value::as_str) else {
        return;
    };
    let ok = match (format, v) {
        ("int32", Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        ("int64", Value::Number(n)) => n.as_i64().is_some() || n.is_f64(),
        ("date-time", Value::String(t)) => is_date_time(t),
        ("date", Value::String(t)) => chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok(),
        _ => true,
    };
    if !ok {
        let shown = match v {
            Value::String(t) => t.clone(),
            Value::Number(n) => go_number(n),
            other => other.to_string(),
        };
        out.push(type_invalid(
            path,
            v,
            &format!("{path} in body must be of type {format}: \"{shown}\""),
        ));
    }
}

/// RFC 3339, and the ISO 8601 variants the server's date-time format also accepts.
fn is_date_time(t: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(t).is_ok()
        || chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").is_ok()
        || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn check_enum(v: &Value, s: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let Some(allowed) = s.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.iter().any(|a| json_eq(a, v)) {
        return;
    }
    let shown: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        })
        .collect();
    out.push(not_supported(path, v, &shown));
}

fn bound(s: &Value, key: &str) -> Option<(f64, String)> {
    match s.get(key)? {
        Value::Number(n) => Some((n.as_f64()?, go_number(n))),
        _ => None,
    }
}

fn check_number(
    v: &Value,
    n: &serde_json::Number,
    s: &Value,
    path: &str,
    out: &mut Vec<FieldCause>,
) {
    let Some(x) = n.as_f64() else { return };
    if let Some((min, shown)) = bound(s, "minimum") {
        if flag(s, "exclusiveMinimum") && x <= min {
            out.push(invalid(
                path,
                v,
                &format!("{path} in body should be greater than {shown}"),
            ));
        } else if x < min {
            out.push(invalid(
                path,
                v,
                &format!("{path} in body should be greater than or equal to {shown}"),
            ));
        }
    }
    if let Some((max, shown)) = bound(s, "maximum") {
        if flag(s, "exclusiveMaximum") && x >= max {
            out.push(invalid(
                path,
                v,
                &format!("{path} in body should be less than {shown}"),
            ));
        } else if x > max {
            out.push(invalid(
                path,
                v,
                &format!("{path} in body should be less than or equal to {shown}"),
            ));
        }
    }
    if let Some((m, shown)) = bound(s, "multipleOf")
        && m > 0.0
        && !is_multiple(n, x, m)
    {
        out.push(invalid(
            path,
            v,
            &format!("{path} in body should be a multiple of {shown}"),
        ));
    }
}

fn is_multiple(n: &serde_json::Number, x: f64, m: f64) -> bool {
    match n.as_i64() {
        Some(i) if m.fract() == 0.0 && m < 9.0e15 => i % (m as i64) == 0,
        _ => (x / m).fract() == 0.0,
    }
}

fn check_string(v: &Value, text: &str, s: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let chars = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        out.push(too_long(path, usize::try_from(max).unwrap_or(usize::MAX)));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        out.push(invalid(
            path,
            v,
            &format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && let Ok(re) = Regex::new(pattern)
        && !re.is_match(text)
    {
        out.push(invalid(
            path,
            v,
            &format!("{path} in body should match '{pattern}'"),
        ));
    }
}

fn check_array(
    list: &[Value],
    s: &Value,
    path: &str,
    old: Option<&Value>,
    out: &mut Vec<FieldCause>,
) {
    let len = list.len();
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && len as u64 > max
    {
        out.push(too_many(path, len, max));
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && (len as u64) < min
    {
        out.push(invalid(
            path,
            &Value::from(len),
            &format!("{path} in body should have at least {min} items"),
        ));
    }
    if flag(s, "uniqueItems") && first_duplicate(list).is_some() {
        out.push(invalid(
            path,
            &Value::Array(list.to_vec()),
            &format!("{path} in body shouldn't contain duplicates"),
        ));
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => check_set(list, path, out),
        Some("map") => check_list_map(list, s, path, out),
        _ => {}
    }
    if let Some(item_schema) = items(s) {
        for (i, item) in list.iter().enumerate() {
            let old_item = correlate_item(item, old, s);
            validate_node(item, item_schema, &index(path, i), old_item, out);
        }
    }
}

fn first_duplicate(list: &[Value]) -> Option<usize> {
    let mut seen = HashSet::new();
    list.iter().position(|v| !seen.insert(v.to_string()))
}

/// Indices of the second occurrence of each repeated value (the server reports each value once).
fn repeated_indices<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, v) in values.enumerate() {
        let n = counts.entry(v.to_string()).or_insert(0);
        *n += 1;
        if *n == 2 {
            out.push(i);
        }
    }
    out
}

fn check_set(list: &[Value], path: &str, out: &mut Vec<FieldCause>) {
    for i in repeated_indices(list.iter()) {
        out.push(duplicate(&index(path, i), &list[i]));
    }
}

/// The key of a `list-type: map` item: its map-key fields (defaults apply to absent ones).
pub(crate) fn list_map_key(item: &Value, s: &Value) -> Value {
    let mut key = Map::new();
    let item_props = items(s).and_then(properties);
    for k in list_map_keys(s) {
        let v = item.get(k).cloned().or_else(|| {
            item_props
                .and_then(|p| p.get(k))
                .and_then(|p| p.get("default"))
                .cloned()
        });
        if let Some(v) = v {
            key.insert(k.to_string(), v);
        }
    }
    Value::Object(key)
}

pub(crate) fn list_map_keys(s: &Value) -> Vec<&str> {
    s.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|ks| ks.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The old item a list item is compared with: by key in `list-type: map`, by value in `set`.
pub(crate) fn correlate_item<'a>(
    item: &Value,
    old: Option<&'a Value>,
    schema: &Value,
) -> Option<&'a Value> {
    let old_list = old?.as_array()?;
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let key = list_map_key(item, schema);
            old_list.iter().find(|o| list_map_key(o, schema) == key)
        }
        Some("set") => old_list.iter().find(|o| *o == item),
        _ => None,
    }
}

/// The old object whose fields correlate with the new one's (none for atomic maps, which are
/// replaced as a whole).
pub(crate) fn correlated_fields<'a>(old: Option<&'a Value>, schema: &Value) -> Option<&'a Value> {
    old.filter(|_| schema.get("x-kubernetes-map-type").and_then(Value::as_str) != Some("atomic"))
}

fn check_list_map(list: &[Value], s: &Value, path: &str, out: &mut Vec<FieldCause>) {
    if let Some(i) = list.iter().position(|x| !x.is_null() && !x.is_object()) {
        out.push(invalid(
            &index(path, i),
            &list[i],
            "must be an object for an array of list-type map",
        ));
        return;
    }
    let keys: Vec<Value> = list.iter().map(|item| list_map_key(item, s)).collect();
    for i in repeated_indices(keys.iter()) {
        out.push(duplicate(&index(path, i), &keys[i]));
    }
}

fn check_object(
    map: &Map<String, Value>,
    s: &Value,
    path: &str,
    old: Option<&Value>,
    out: &mut Vec<FieldCause>,
) {
    check_object_fields(map, s, path, old, None, out);
}

/// [`check_object`] leaving the property `skip` (and its schema) out.
fn check_object_fields(
    map: &Map<String, Value>,
    s: &Value,
    path: &str,
    old: Option<&Value>,
    skip: Option<&str>,
    out: &mut Vec<FieldCause>,
) {
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                out.push(required(&child(path, r), ""));
            }
        }
    }
    let count = map.len();
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && count as u64 > max
    {
        out.push(too_many(path, count, max));
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && (count as u64) < min
    {
        out.push(invalid(
            path,
            &Value::from(count),
            &format!("{path} in body should have at least {min} properties"),
        ));
    }
    let props = properties(s);
    let addl = additional(s).filter(|a| !a.is_null());
    let old = correlated_fields(old, s);
    for (k, v) in map.iter().filter(|(k, _)| Some(k.as_str()) != skip) {
        let sub = props.and_then(|p| p.get(k)).or(addl);
        if let Some(sub) = sub {
            validate_node(v, sub, &child(path, k), old.and_then(|o| o.get(k)), out);
        }
    }
}

fn errors_of(v: &Value, s: &Value, path: &str) -> Vec<FieldCause> {
    let mut out = Vec::new();
    validate_node(v, s, path, None, &mut out);
    out
}

/// `allOf`, `anyOf`, `oneOf` and `not`: validation only, as in structural schemas.
fn check_combinators(v: &Value, s: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let empty = Value::from("");
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            validate_node(v, sub, path, None, out);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let branches: Vec<Vec<FieldCause>> =
            any.iter().map(|sub| errors_of(v, sub, path)).collect();
        if !branches.is_empty() && branches.iter().all(|b| !b.is_empty()) {
            out.extend(branches.into_iter().flatten());
            out.push(invalid(
                path,
                &empty,
                &format!("{path} in body must match at least one schema in anyOf"),
            ));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let passing = one
            .iter()
            .filter(|sub| errors_of(v, sub, path).is_empty())
            .count();
        if passing != 1 {
            out.push(invalid(
                path,
                &empty,
                &format!("{path} in body must match exactly one schema in oneOf"),
            ));
        }
    }
    if let Some(not) = s.get("not")
        && errors_of(v, not, path).is_empty()
    {
        out.push(invalid(
            path,
            &empty,
            &format!("{path} in body must not validate the schema (not)"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(schema: Value, obj: Value) -> Vec<(String, String, String)> {
        validate(&schema, &obj, None)
            .into_iter()
            .map(|c| (c.field, c.reason, c.message))
            .collect()
    }

    fn obj_schema(prop: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"x": prop}}}})
    }

    #[test]
    fn numbers() {
        let s = obj_schema(
            json!({"type": "number", "minimum": 1.5, "maximum": 10, "exclusiveMaximum": true, "multipleOf": 0.5}),
        );
        assert!(msgs(s.clone(), json!({"spec": {"x": 2}})).is_empty());
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": 1}}))[0].2,
            "Invalid value: 1: spec.x in body should be greater than or equal to 1.5"
        );
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": 10}}))[0].2,
            "Invalid value: 10: spec.x in body should be less than 10"
        );
        assert_eq!(
            msgs(s, json!({"spec": {"x": 2.2}}))[0].2,
            "Invalid value: 2.2: spec.x in body should be a multiple of 0.5"
        );
        let s = obj_schema(json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true}));
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": 0}}))[0].2,
            "Invalid value: 0: spec.x in body should be greater than 0"
        );
        assert_eq!(
            msgs(s, json!({"spec": {"x": 1.5}}))[0].2,
            "Invalid value: \"number\": spec.x in body must be of type integer: \"number\""
        );
    }

    #[test]
    fn int_formats() {
        let s = obj_schema(json!({"type": "integer", "format": "int32"}));
        assert!(msgs(s.clone(), json!({"spec": {"x": 2147483647}})).is_empty());
        let e = msgs(s, json!({"spec": {"x": 2147483648u64}}));
        assert_eq!(e[0].1, "FieldValueTypeInvalid");
        assert_eq!(
            e[0].2,
            "Invalid value: 2147483648: spec.x in body must be of type int32: \"2147483648\""
        );
        let s = obj_schema(json!({"type": "integer", "format": "int64"}));
        assert_eq!(msgs(s, json!({"spec": {"x": u64::MAX}})).len(), 1);
    }

    #[test]
    fn strings() {
        let s = obj_schema(
            json!({"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z]+$"}),
        );
        assert!(msgs(s.clone(), json!({"spec": {"x": "ab"}})).is_empty());
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": "abcd"}})),
            vec![(
                "spec.x".into(),
                "FieldValueTooLong".into(),
                "Too long: may not be more than 3 bytes".into()
            )]
        );
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": "a"}}))[0].2,
            "Invalid value: \"a\": spec.x in body should be at least 2 chars long"
        );
        assert_eq!(
            msgs(s, json!({"spec": {"x": "A1"}}))[0].2,
            "Invalid value: \"A1\": spec.x in body should match '^[a-z]+$'"
        );
    }

    #[test]
    fn date_time_format() {
        let s = obj_schema(json!({"type": "string", "format": "date-time"}));
        assert!(msgs(s.clone(), json!({"spec": {"x": "2026-01-02T03:04:05Z"}})).is_empty());
        assert!(
            msgs(
                s.clone(),
                json!({"spec": {"x": "2026-01-02T03:04:05.123+02:00"}})
            )
            .is_empty()
        );
        assert_eq!(
            msgs(s, json!({"spec": {"x": "tomorrow"}}))[0].2,
            "Invalid value: \"tomorrow\": spec.x in body must be of type date-time: \"tomorrow\""
        );
    }

    #[test]
    fn arrays() {
        let s = obj_schema(
            json!({"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"}),
        );
        assert!(msgs(s.clone(), json!({"spec": {"x": ["a"]}})).is_empty());
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": ["a", "b", "c"]}}))[0].2,
            "Too many: 3: must have at most 2 items"
        );
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": []}}))[0].2,
            "Invalid value: 0: spec.x in body should have at least 1 items"
        );
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": ["a", "a", "b", "a"]}}))[1..].to_vec(),
            vec![(
                "spec.x[1]".into(),
                "FieldValueDuplicate".into(),
                "Duplicate value: \"a\"".into()
            )]
        );
        assert_eq!(
            msgs(s, json!({"spec": {"x": ["a", 1]}}))[0],
            (
                "spec.x[1]".into(),
                "FieldValueTypeInvalid".into(),
                "Invalid value: \"integer\": spec.x[1] in body must be of type string: \"integer\""
                    .into()
            )
        );
        let s = obj_schema(json!({"type": "array", "uniqueItems": true}));
        assert_eq!(msgs(s, json!({"spec": {"x": [1, 1]}})).len(), 1);
    }

    #[test]
    fn list_maps() {
        let s = obj_schema(json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name", "port"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}));
        let ok = json!({"spec": {"x": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}});
        assert!(msgs(s.clone(), ok).is_empty());
        let dup = json!({"spec": {"x": [{"name": "a", "port": 1}, {"name": "a", "port": 1}, {"port": 1, "name": "a"}, {}, {}]}});
        assert_eq!(
            msgs(s.clone(), dup),
            vec![
                (
                    "spec.x[1]".into(),
                    "FieldValueDuplicate".into(),
                    "Duplicate value: {\"name\":\"a\",\"port\":1}".into()
                ),
                (
                    "spec.x[4]".into(),
                    "FieldValueDuplicate".into(),
                    "Duplicate value: {}".into()
                ),
            ]
        );
        let e = msgs(s, json!({"spec": {"x": [{"name": "a"}, "b"]}}));
        assert_eq!(
            e[0],
            (
                "spec.x[1]".into(),
                "FieldValueInvalid".into(),
                "Invalid value: \"b\": must be an object for an array of list-type map".into()
            )
        );
    }

    #[test]
    fn maps_and_property_counts() {
        let s = obj_schema(
            json!({"type": "object", "maxProperties": 2, "minProperties": 1,
            "additionalProperties": {"type": "integer", "minimum": 0}}),
        );
        assert!(msgs(s.clone(), json!({"spec": {"x": {"a": 1}}})).is_empty());
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": {"a": -1}}}))[0].2,
            "Invalid value: -1: spec.x.a in body should be greater than or equal to 0"
        );
        assert_eq!(
            msgs(s.clone(), json!({"spec": {"x": {"a": 1, "b": 2, "c": 3}}}))[0].1,
            "FieldValueTooMany"
        );
        assert_eq!(
            msgs(s, json!({"spec": {"x": {}}}))[0].2,
            "Invalid value: 0: spec.x in body should have at least 1 properties"
        );
    }

    #[test]
    fn nullability() {
        let s = obj_schema(json!({"type": "string", "nullable": true}));
        assert!(msgs(s, json!({"spec": {"x": null}})).is_empty());
        let s = obj_schema(json!({"type": "string"}));
        assert_eq!(
            msgs(s, json!({"spec": {"x": null}}))[0].2,
            "Invalid value: \"null\": spec.x in body must be of type string: \"null\""
        );
    }

    #[test]
    fn int_or_string_values() {
        let s = obj_schema(json!({"x-kubernetes-int-or-string": true}));
        assert!(msgs(s.clone(), json!({"spec": {"x": 3}})).is_empty());
        assert!(msgs(s.clone(), json!({"spec": {"x": "25%"}})).is_empty());
        let e = msgs(s, json!({"spec": {"x": true}}));
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[2].2,
            "Invalid value: \"\": spec.x in body must match at least one schema in anyOf"
        );
    }

    #[test]
    fn combinators() {
        let s = obj_schema(json!({"type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            "not": {"required": ["c"]},
            "allOf": [{"minProperties": 1}]}));
        assert!(msgs(s.clone(), json!({"spec": {"x": {"a": "1"}}})).is_empty());
        let both = msgs(s.clone(), json!({"spec": {"x": {"a": "1", "b": "2"}}}));
        assert_eq!(
            both[0].2,
            "Invalid value: \"\": spec.x in body must match exactly one schema in oneOf"
        );
        let e = msgs(s, json!({"spec": {"x": {}}}));
        assert!(
            e.iter().any(|c| c.2.contains("at least 1 properties")),
            "{e:?}"
        );
        let s = obj_schema(json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}));
        assert!(msgs(s.clone(), json!({"spec": {"x": 1}})).is_empty());
        assert_eq!(msgs(s, json!({"spec": {"x": []}})).len(), 3);
    }

    #[test]
    fn pruning_keeps_declared_and_preserved() {
        let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "keep": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"typed": {"type": "object", "properties": {}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "any": {"type": "object", "additionalProperties": true}
        }}}});
        let mut obj = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n", "bogus": 1},
            "spec": {"keep": {"free": {"x": 1}, "typed": {"gone": 1}},
                     "map": {"k": {"a": "1", "b": 2}},
                     "list": [{"a": "1", "z": 0}],
                     "any": {"q": {"r": 1}},
                     "extra": 1},
            "top": 1});
        let unknown = prune(&s, &mut obj);
        assert_eq!(
            unknown,
            vec![
                "metadata.bogus",
                "spec.extra",
                "spec.keep.typed.gone",
                "spec.list[0].z",
                "spec.map.k.b",
                "top"
            ]
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"},
                "spec": {"keep": {"free": {"x": 1}, "typed": {}}, "map": {"k": {"a": "1"}},
                         "list": [{"a": "1"}], "any": {"q": {"r": 1}}}})
        );
    }

    #[test]
    fn embedded_resources_keep_type_meta() {
        let s = obj_schema(
            json!({"type": "object", "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}),
        );
        let mut obj = json!({"spec": {"x": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {"a": 1}, "other": 1}}});
        let unknown = prune(&s, &mut obj);
        assert_eq!(unknown, vec!["spec.x.metadata.junk", "spec.x.other"]);
    }

    #[test]
    fn defaults_nested_and_nulls() {
        let s = obj_schema(json!({"type": "object", "default": {},
        "properties": {
            "a": {"type": "string", "default": "A"},
            "n": {"type": "string", "nullable": true, "default": "N"},
            "d": {"type": "string"},
            "o": {"type": "object", "default": {"k": 1}, "properties": {"k": {"type": "integer"}, "z": {"type": "integer", "default": 0}}}
        }}));
        let mut obj = json!({"spec": {}});
        apply_defaults(&s, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"x": {"a": "A", "n": "N", "o": {"k": 1, "z": 0}}}})
        );
        let mut obj = json!({"spec": {"x": {"a": null, "n": null, "d": null}}});
        apply_defaults(&s, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"x": {"a": "A", "n": null, "o": {"k": 1, "z": 0}}}})
        );
        // No parent, no default below it.
        let mut obj = json!({});
        apply_defaults(&s, &mut obj);
        assert_eq!(obj, json!({}));
    }
}
