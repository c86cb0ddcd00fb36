//! Resource verbs: each request lands in exactly one of these handlers.

pub mod crds;
pub mod delete;
pub mod read;
pub mod write;

use std::sync::Arc;

use http::{Method, Response};
use serde_json::{Value, json};

use super::patch::{self, ListSemantics};
use super::protobuf;
use super::registry::ResourceInfo;
use super::server::{Body, Call, Core};
use super::status::ApiError;
use super::store::Mutation;
use super::validation::FieldValidation;

/// Dispatches a resource request to its verb.
pub async fn serve(core: &Arc<Core>, call: &Call) -> Result<Response<Body>, ApiError> {
    if call.res.namespaced && call.path.name.is_some() && call.path.namespace.is_none() {
        return Err(ApiError::no_route(&format!(
            "{} requires a namespace",
            call.res.plural
        )));
    }
    let sub = call.path.subresource.as_deref();
    match sub {
        None => {}
        Some("status") if call.res.has_status => {}
        Some("scale") if call.res.scale.is_some() => {}
        Some(other) => {
            return Err(ApiError::no_route(&format!("{}/{other}", call.res.plural)));
        }
    }
    let name = call.path.name.as_deref();
    match (&call.method, name, sub) {
        (&Method::GET, _, None) if call.verb() == "watch" => read::watch(core, call),
        (&Method::GET, None, None) => read::list(core, call),
        (&Method::GET, Some(n), Some("scale")) => write::get_scale(core, call, n),
        (&Method::GET, Some(n), _) => read::get(core, call, n),
        (&Method::POST, None, None) => write::create(core, call),
        (&Method::PUT, Some(n), Some("scale")) | (&Method::PATCH, Some(n), Some("scale")) => {
            write::write_scale(core, call, n)
        }
        (&Method::PUT, Some(n), _) => write::update(core, call, n),
        (&Method::PATCH, Some(n), _) => write::patch(core, call, n),
        (&Method::DELETE, Some(n), None) => delete::delete(core, call, n),
        (&Method::DELETE, None, None) => delete::delete_collection(core, call),
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            call.method,
            call.res.qualified_name()
        ))),
    }
}

/// Decodes a write body: JSON, protobuf (helm's Secrets) or YAML.
pub fn decode_body(call: &Call) -> Result<Value, ApiError> {
    let ct = call.content_type();
    let value: Value = if protobuf::is_protobuf(ct) {
        protobuf::decode(&call.body).map_err(|e| {
            ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })?
    } else if ct.contains("yaml") {
        patch::parse_apply_body(&call.body).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        serde_json::from_slice(&call.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized or malformed: {e}"
            ))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized: the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// The `fieldValidation` mode of a write (the real server defaults to Warn).
pub fn field_validation(call: &Call) -> FieldValidation {
    match call.param("fieldValidation") {
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        _ => FieldValidation::Warn,
    }
}

/// List merge semantics for managed fields of a resource.
pub fn lists_for(res: &ResourceInfo) -> Box<dyn ListSemantics> {
    match &res.schema {
        Some(schema) => Box::new(patch::SchemaLists::new(schema)),
        None => Box::new(patch::BuiltinLists::new(&res.kind)),
    }
}

/// The namespaces a fresh cluster has.
pub fn seed_namespaces(core: &Core) {
    let Some(res) = core.registry.get("", "v1", "namespaces") else {
        return;
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        super::objects::stamp_new(&mut obj, None);
        obj["metadata"]["labels"] = json!({ "kubernetes.io/metadata.name": ns });
        obj["spec"] = json!({ "finalizers": ["kubernetes"] });
        obj["status"] = json!({ "phase": "Active" });
        let _ = core.store.commit(
            &res.key(),
            &(String::new(), ns.to_string()),
            None,
            Mutation::Put(obj),
        );
    }
}
