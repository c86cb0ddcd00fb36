//! `/openapi.json`: an OpenAPI 3 description of the routes and schemas this server serves.

use serde_json::{Value, json};

fn op(summary: &str, ok: &str, ok_schema: Option<&str>, errors: &[u16]) -> Value {
    let mut responses = serde_json::Map::new();
    let ok_body = match ok_schema {
        Some(s) => json!({"description": "Success",
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}}),
        None => json!({"description": "Success (empty body)"}),
    };
    responses.insert(ok.to_string(), ok_body);
    for code in errors {
        responses.insert(
            code.to_string(),
            json!({"description": "Error", "content": {"application/json":
                {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}),
        );
    }
    json!({"summary": summary, "responses": responses})
}

fn with_body(mut op: Value, schema: &str) -> Value {
    op["requestBody"] = json!({"required": true, "content": {"application/json":
        {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    op
}

fn id_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "OpenSandbox Lifecycle API (Rust)", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/v1"}, {"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "OPEN-SANDBOX-API-KEY"}},
            "schemas": schemas()
        }
    })
}

fn paths() -> Value {
    let sid = id_param("sandboxId");
    let port = json!({"name": "port", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": 65535}});
    let pool = id_param("poolName");
    let mut m = serde_json::Map::new();
    m.insert(
        "/health".to_string(),
        json!({"get": op("Health check", "200", None, &[])}),
    );
    m.insert("/sandboxes".to_string(), json!({
                "post": with_body(op("Create a sandbox", "202", Some("CreateSandboxResponse"), &[400, 401, 404, 409, 422, 429, 500, 504]), "CreateSandboxRequest"),
                "get": {
                    "summary": "List sandboxes",
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true},
                        {"name": "metadata", "in": "query", "schema": {"type": "string"}, "description": "k=v&k2=v2, URL-encoded"},
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                        {"name": "pageSize", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}}
                    ],
                    "responses": op("", "200", Some("ListSandboxesResponse"), &[400, 401, 422])["responses"].clone()
                }
            }));
    m.insert(
        "/sandboxes/{sandboxId}".to_string(),
        json!({
            "parameters": [sid],
            "get": op("Get a sandbox", "200", Some("Sandbox"), &[401, 404]),
            "delete": op("Delete a sandbox", "204", None, &[401, 404, 500])
        }),
    );
    m.insert("/sandboxes/{sandboxId}/metadata".to_string(), json!({
                "parameters": [sid],
                "patch": with_body(op("Merge-patch user metadata", "200", Some("Sandbox"), &[400, 401, 404, 422]), "MetadataPatch")
            }));
    m.insert("/sandboxes/{sandboxId}/renew-expiration".to_string(), json!({
                "parameters": [sid],
                "post": with_body(op("Set a new expiry", "200", Some("RenewExpirationResponse"), &[400, 401, 404, 409, 422]), "RenewExpirationRequest")
            }));
    m.insert("/sandboxes/{sandboxId}/endpoints/{port}".to_string(), json!({
                "parameters": [sid, port, {"name": "use_server_proxy", "in": "query", "schema": {"type": "boolean", "default": false}}],
                "get": op("Resolve the address of a sandbox port", "200", Some("Endpoint"), &[400, 401, 404, 422])
            }));
    m.insert("/sandboxes/{sandboxId}/pause".to_string(), json!({"parameters": [sid], "post": op("Pause (not implemented)", "202", None, &[401, 404, 501])}));
    m.insert("/sandboxes/{sandboxId}/resume".to_string(), json!({"parameters": [sid], "post": op("Resume (not implemented)", "202", None, &[401, 404, 501])}));
    m.insert("/sandboxes/{sandboxId}/snapshots".to_string(), json!({"parameters": [sid], "post": op("Snapshot (not implemented)", "202", None, &[401, 501])}));
    m.insert(
        "/snapshots".to_string(),
        json!({"get": op("Snapshots (not implemented)", "200", None, &[401, 501])}),
    );
    m.insert("/sandboxes/{sandboxId}/diagnostics/logs".to_string(), json!({
                "parameters": [sid, {"name": "scope", "in": "query", "schema": {"type": "string", "enum": ["container", "all"]}}],
                "get": op("Container logs", "200", Some("DiagnosticContent"), &[400, 401, 404])
            }));
    m.insert("/sandboxes/{sandboxId}/diagnostics/events".to_string(), json!({
                "parameters": [sid, {"name": "scope", "in": "query", "schema": {"type": "string", "enum": ["runtime", "all"]}}],
                "get": op("Kubernetes events", "200", Some("DiagnosticContent"), &[400, 401, 404])
            }));
    m.insert("/sandboxes/{sandboxId}/proxy/{port}/{path}".to_string(), json!({
                "parameters": [sid, port, {"name": "path", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "Streaming reverse proxy to the sandbox (no API key)", "security": [], "responses": {"default": {"description": "The sandbox's response"}}}
            }));
    m.insert("/metrics/events".to_string(), json!({"post": with_body(op("SDK create report", "204", None, &[401, 422]), "MetricsEvent")}));
    m.insert("/pools".to_string(), json!({
                "post": with_body(op("Create a pool", "201", Some("PoolResponse"), &[401, 409, 422, 501]), "CreatePoolRequest"),
                "get": op("List pools", "200", Some("ListPoolsResponse"), &[401, 501])
            }));
    m.insert("/pools/{poolName}".to_string(), json!({
                "parameters": [pool],
                "get": op("Get a pool", "200", Some("PoolResponse"), &[401, 404]),
                "put": with_body(op("Update a pool's capacity", "200", Some("PoolResponse"), &[401, 404, 422]), "UpdatePoolRequest"),
                "delete": op("Delete a pool", "204", None, &[401, 404])
            }));
    Value::Object(m)
}

fn schemas() -> Value {
    let str_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let mut m = serde_json::Map::new();
    m.insert("ErrorResponse".to_string(), json!({"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}));
    m.insert(
        "ImageSpec".to_string(),
        json!({"type": "object", "required": ["uri"], "properties": {"uri": {"type": "string"}}}),
    );
    m.insert("PlatformSpec".to_string(), json!({"type": "object", "required": ["os", "arch"], "properties": {"os": {"type": "string", "enum": ["linux", "windows"]}, "arch": {"type": "string", "enum": ["amd64", "arm64"]}}}));
    m.insert(
        "CreateSandboxRequest".to_string(),
        json!({"type": "object", "properties": {
            "image": {"$ref": "#/components/schemas/ImageSpec"},
            "timeout": {"type": "integer", "minimum": 60, "nullable": true},
            "resourceLimits": str_map, "resourceRequests": str_map,
            "env": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
            "metadata": str_map,
            "entrypoint": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "platform": {"$ref": "#/components/schemas/PlatformSpec"},
            "secureAccess": {"type": "boolean"},
            "extensions": str_map
        }}),
    );
    m.insert("SandboxStatus".to_string(), json!({"type": "object", "required": ["state"], "properties": {
                    "state": {"type": "string"}, "reason": {"type": "string"}, "message": {"type": "string"},
                    "lastTransitionAt": {"type": "string", "format": "date-time"}}}));
    m.insert("Sandbox".to_string(), json!({"type": "object", "required": ["id", "status", "entrypoint", "createdAt"], "properties": {
                    "id": {"type": "string"}, "image": {"$ref": "#/components/schemas/ImageSpec"},
                    "platform": {"$ref": "#/components/schemas/PlatformSpec"},
                    "status": {"$ref": "#/components/schemas/SandboxStatus"}, "metadata": str_map,
                    "entrypoint": {"type": "array", "items": {"type": "string"}},
                    "expiresAt": {"type": "string", "format": "date-time"}, "createdAt": {"type": "string", "format": "date-time"}}}));
    m.insert("CreateSandboxResponse".to_string(), json!({"type": "object", "required": ["id", "status", "entrypoint", "createdAt"], "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/SandboxStatus"}, "metadata": str_map,
                    "platform": {"$ref": "#/components/schemas/PlatformSpec"},
                    "entrypoint": {"type": "array", "items": {"type": "string"}},
                    "expiresAt": {"type": "string", "format": "date-time"}, "createdAt": {"type": "string", "format": "date-time"}}}));
    m.insert("PaginationInfo".to_string(), json!({"type": "object", "required": ["page", "pageSize", "totalItems", "totalPages", "hasNextPage"], "properties": {
                    "page": {"type": "integer"}, "pageSize": {"type": "integer"}, "totalItems": {"type": "integer"},
                    "totalPages": {"type": "integer"}, "hasNextPage": {"type": "boolean"}}}));
    m.insert(
        "ListSandboxesResponse".to_string(),
        json!({"type": "object", "required": ["items", "pagination"], "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Sandbox"}},
                    "pagination": {"$ref": "#/components/schemas/PaginationInfo"}}}),
    );
    m.insert(
        "MetadataPatch".to_string(),
        json!({"type": "object", "additionalProperties": {"type": "string", "nullable": true}}),
    );
    m.insert("RenewExpirationRequest".to_string(), json!({"type": "object", "required": ["expiresAt"], "properties": {"expiresAt": {"type": "string", "format": "date-time"}}}));
    m.insert("RenewExpirationResponse".to_string(), json!({"type": "object", "required": ["expiresAt"], "properties": {"expiresAt": {"type": "string", "format": "date-time"}}}));
    m.insert("Endpoint".to_string(), json!({"type": "object", "required": ["endpoint"], "properties": {"endpoint": {"type": "string"}, "headers": str_map}}));
    m.insert("MetricsEvent".to_string(), json!({"type": "object", "required": ["eventType", "createDurationMs", "success"], "properties": {
                    "eventType": {"type": "string", "enum": ["sandbox.create"]}, "createDurationMs": {"type": "integer", "minimum": 0},
                    "success": {"type": "boolean"}, "sandboxId": {"type": "string"}, "image": {"type": "string"}}}));
    m.insert("DiagnosticContent".to_string(), json!({"type": "object", "required": ["sandboxId", "kind", "scope", "delivery", "contentType", "truncated"], "properties": {
                    "sandboxId": {"type": "string"}, "kind": {"type": "string", "enum": ["logs", "events"]}, "scope": {"type": "string"},
                    "delivery": {"type": "string", "enum": ["inline"]}, "contentType": {"type": "string"}, "content": {"type": "string"},
                    "contentLength": {"type": "integer"}, "truncated": {"type": "boolean"},
                    "warnings": {"type": "array", "items": {"type": "string"}}}}));
    m.insert("CapacitySpec".to_string(), json!({"type": "object", "required": ["bufferMax", "bufferMin", "poolMax", "poolMin"], "properties": {
                    "bufferMax": {"type": "integer", "minimum": 0}, "bufferMin": {"type": "integer", "minimum": 0},
                    "poolMax": {"type": "integer", "minimum": 0}, "poolMin": {"type": "integer", "minimum": 0}}}));
    m.insert(
        "CreatePoolRequest".to_string(),
        json!({"type": "object", "required": ["name", "template", "capacitySpec"], "properties": {
                    "name": {"type": "string", "maxLength": 253}, "template": {"type": "object"},
                    "capacitySpec": {"$ref": "#/components/schemas/CapacitySpec"}}}),
    );
    m.insert("UpdatePoolRequest".to_string(), json!({"type": "object", "required": ["capacitySpec"], "properties": {"capacitySpec": {"$ref": "#/components/schemas/CapacitySpec"}}}));
    m.insert("PoolResponse".to_string(), json!({"type": "object", "required": ["name", "capacitySpec"], "properties": {
                    "name": {"type": "string"}, "capacitySpec": {"$ref": "#/components/schemas/CapacitySpec"},
                    "status": {"type": "object", "properties": {"total": {"type": "integer"}, "allocated": {"type": "integer"},
                        "available": {"type": "integer"}, "revision": {"type": "string"}}},
                    "createdAt": {"type": "string", "format": "date-time"}}}));
    m.insert("ListPoolsResponse".to_string(), json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/PoolResponse"}}}}));
    Value::Object(m)
}
