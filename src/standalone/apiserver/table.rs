//! Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`.
//!
//! kubectl asks for a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`) and
//! prints whatever columns the server returns: custom resources get `Name` plus their
//! `additionalPrinterColumns` (or `Age`), built-in kinds get the columns the real server prints.
//! `date` cells are humanised here (`5s`, `3m`, `4d`), kubectl prints them verbatim.

mod builtin;
mod jsonpath;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::discovery::media_ranges;
use super::registry::{PrinterColumn, ResourceInfo};

pub use jsonpath::{JsonPath, JsonPathError};

/// What each row carries in `object` (`includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the server default).
    #[default]
    Metadata,
    Object,
}

/// How to render a Table.
#[derive(Clone, Debug)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub now: DateTime<Utc>,
    /// False in watch events after the first: kubectl reuses the list's columns.
    pub with_column_definitions: bool,
}

impl TableOptions {
    /// Metadata rows, column definitions, no continue token.
    pub fn new(resource_version: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            include_object: IncludeObject::Metadata,
            resource_version: resource_version.into(),
            continue_token: None,
            now,
            with_column_definitions: true,
        }
    }
}

/// True when an Accept header asks for a `meta.k8s.io` Table (v1 or v1beta1).
pub fn parse_table_accept(accept: &str) -> bool {
    table_api_version(accept).is_some()
}

/// The Table `apiVersion` an Accept header asks for first (`meta.k8s.io/v1` or
/// `meta.k8s.io/v1beta1`). `render_table` writes v1; kubectl offers both, v1 first.
pub fn table_api_version(accept: &str) -> Option<&'static str> {
    media_ranges(accept).iter().find_map(|r| {
        let table = r.essence.eq_ignore_ascii_case("application/json")
            && r.param("as") == Some("Table")
            && r.param("g") == Some("meta.k8s.io");
        match r.param("v") {
            Some("v1") if table => Some("meta.k8s.io/v1"),
            Some("v1beta1") if table => Some("meta.k8s.io/v1beta1"),
            _ => None,
        }
    })
}

/// The `includeObject` query parameter (`None`, `Metadata`, `Object`); Metadata by default.
pub fn parse_include_object(query_value: Option<&str>) -> IncludeObject {
    match query_value {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// A column of a Table, before rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
}

impl Column {
    pub(crate) fn new(name: &str, type_: &str, priority: i32, description: &str) -> Self {
        Self {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: description.to_string(),
            priority,
        }
    }

    fn name_column() -> Self {
        Self {
            format: "name".to_string(),
            ..Self::new(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace. Cannot be updated.",
            )
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Renders `objects` of one resource as a Table.
pub fn render_table(res: &ResourceInfo, objects: &[&Value], opts: &TableOptions) -> Value {
    let printer = printer_for(res);
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = json!({ "cells": printer.cells(obj, opts.now) });
            if let Some(conditions) = printer.row_conditions(obj) {
                row["conditions"] = conditions;
            }
            if let Some(o) = row_object(res, obj, opts.include_object) {
                row["object"] = o;
            }
            row
        })
        .collect();
    let columns: Vec<Value> = if opts.with_column_definitions {
        printer.columns().iter().map(Column::to_json).collect()
    } else {
        Vec::new()
    };
    let mut metadata = json!({ "resourceVersion": opts.resource_version });
    if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The object of a watch event when the watch asked for Tables: a one-row Table.
pub fn table_watch_event_object(res: &ResourceInfo, object: &Value, opts: &TableOptions) -> Value {
    render_table(res, &[object], opts)
}

/// The column definitions a Table of this resource has.
pub fn columns_for(res: &ResourceInfo) -> Vec<Column> {
    printer_for(res).columns()
}

fn row_object(res: &ResourceInfo, obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
        IncludeObject::Object => {
            let mut o = obj.clone();
            if let Value::Object(m) = &mut o {
                m.entry("apiVersion")
                    .or_insert_with(|| json!(res.api_version()));
                m.entry("kind").or_insert_with(|| json!(res.kind));
            }
            Some(o)
        }
    }
}

enum Printer {
    Custom(Vec<CustomColumn>),
    Builtin(builtin::Printer),
}

/// A CRD printer column with its JSONPath parsed once per Table.
struct CustomColumn {
    def: PrinterColumn,
    /// None when the path does not parse: the cells are then null.
    path: Option<JsonPath>,
}

impl Printer {
    fn columns(&self) -> Vec<Column> {
        match self {
            Printer::Custom(cols) => custom_columns(cols),
            Printer::Builtin(p) => p.columns(),
        }
    }

    fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        match self {
            Printer::Custom(cols) => custom_cells(cols, obj, now),
            Printer::Builtin(p) => p.cells(obj, now),
        }
    }

    fn row_conditions(&self, obj: &Value) -> Option<Value> {
        match self {
            Printer::Custom(_) => None,
            Printer::Builtin(p) => p.row_conditions(obj),
        }
    }
}

fn printer_for(res: &ResourceInfo) -> Printer {
    if res.builtin {
        return Printer::Builtin(builtin::Printer::for_kind(&res.group, &res.kind));
    }
    let defs = if res.printer_columns.is_empty() {
        vec![default_age_column()]
    } else {
        res.printer_columns.clone()
    };
    Printer::Custom(
        defs.into_iter()
            .map(|def| CustomColumn {
                path: JsonPath::parse(&def.json_path).ok(),
                def,
            })
            .collect(),
    )
}

/// The Age column the real server adds to a custom resource without printer columns.
fn default_age_column() -> PrinterColumn {
    PrinterColumn {
        name: "Age".to_string(),
        type_: "date".to_string(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.".to_string(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".to_string(),
    }
}

fn custom_columns(cols: &[CustomColumn]) -> Vec<Column> {
    let mut out = vec![Column::name_column()];
    out.extend(cols.iter().map(|c| Column {
        name: c.def.name.clone(),
        type_: c.def.type_.clone(),
        format: c.def.format.clone(),
        description: if c.def.description.is_empty() {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                c.def.json_path
            )
        } else {
            c.def.description.clone()
        },
        priority: c.def.priority,
    }));
    out
}

fn custom_cells(cols: &[CustomColumn], obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut cells = vec![json!(name_of(obj))];
    for col in cols {
        let results = col.path.as_ref().map(|p| p.find(obj)).unwrap_or_default();
        cells.push(cell_for(&col.def.type_, &results, now));
    }
    cells
}

/// One CRD cell from the JSONPath results; a missing value is null (printed blank).
/// Like the real server, only the first match is used, even when the path selects several.
fn cell_for(type_: &str, results: &[&Value], now: DateTime<Utc>) -> Value {
    let Some(first) = results.first() else {
        return Value::Null;
    };
    match (type_, first) {
        (_, Value::Null) => Value::Null,
        ("string", v) => json!(go_text(v)),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", v @ Value::Number(_)) | ("boolean", v @ Value::Bool(_)) => (*v).clone(),
        ("date", Value::String(s)) => match parse_time(s) {
            Some(t) => json!(human_duration(now - t)),
            None => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// A JSONPath result printed as text the way Go's `%v` prints decoded JSON:
/// strings bare, `map[k:v ...]` with sorted keys, `[a b]` for arrays.
pub(crate) fn go_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_text).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect();
            items.sort();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

pub(crate) fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `<unknown>` for a missing timestamp, otherwise the humanised time since it.
pub(crate) fn since(ts: &Value, now: DateTime<Utc>) -> String {
    match ts.as_str().and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

/// Humanises a duration the way Kubernetes prints ages: precise while short, coarser with age
/// (`90s`, `2m30s`, `10m`, `2h5m`, `10h`, `3d4h`, `20d`, `2y30d`, `9y`).
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

#[cfg(test)]
mod tests;
