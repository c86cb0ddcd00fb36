//! Schema helpers for fields that are deliberately schemaless in the CRDs.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose content the API server keeps as is (pod templates, patches, task templates).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A list of schemaless objects (`shardPatches`, `shardTaskPatches`).
pub fn preserve_unknown_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "nullable": true,
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

/// `int-or-string`, as `maxUnavailable` fields are ("25%" or 3).
pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "nullable": true
    })
}

/// A condition list merged by `type`.
pub fn condition_list(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<super::Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"]
    })
}

/// An RFC 3339 timestamp.
pub fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "format": "date-time",
        "nullable": true
    })
}
