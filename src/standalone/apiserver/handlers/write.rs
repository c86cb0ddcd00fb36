//! POST, PUT and PATCH.

use std::sync::Arc;

use http::Response;
use serde_json::{Value, json};

use super::super::objects::{
    bump_generation, carry_server_meta, check_type, default_builtin, initial_status, now_rfc3339,
    require_name, same_content, stamp_new,
};
use super::super::patch;
use super::super::registry::{ResourceInfo, resources_from_crd};
use super::super::server::{Body, Call, Core, bytes_response, json_response};
use super::super::status::{ApiError, FieldCause};
use super::super::store::{CommitError, Mutation, ObjRef};
use super::super::validation::{self, FieldValidation, ValidationError};
use super::{decode_body, field_validation, lists_for};

/// Attempts before a write that keeps racing other writers gives up.
const MAX_RACES: usize = 64;

fn committed_response(code: u16, obj: &ObjRef, warnings: &[String]) -> Response<Body> {
    let mut resp = bytes_response(code, "application/json", obj.json.clone());
    for w in warnings {
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\"")))
        {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

/// Schema and metadata validation shared by every write. Returns warnings.
fn validate(
    res: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut causes = validation::validate_object_meta(&obj["metadata"], res.namespaced, &res.kind);
    let mut warnings = Vec::new();
    if let Some(schema) = &res.schema {
        match validation::validate_custom_resource(schema, obj, old, mode) {
            Ok(w) => warnings = w,
            Err(ValidationError::UnknownFields(fields)) => {
                let list: Vec<String> = fields
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            Err(ValidationError::Invalid(c)) => causes.extend(c),
        }
    }
    if let Some(old) = old
        && old["metadata"]["deletionTimestamp"].is_string()
    {
        let before = finalizers(old);
        if finalizers(obj).iter().any(|f| !before.contains(f)) {
            causes.push(FieldCause::new(
                "FieldValueForbidden",
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if causes.is_empty() {
        Ok(warnings)
    } else {
        Err(ApiError::invalid(res, &name, causes))
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn check_namespace(core: &Core, call: &Call) -> Result<(), ApiError> {
    let Some(ns) = call.namespace() else {
        if call.res.namespaced {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        }
        return Ok(());
    };
    let ns_res = core
        .registry
        .get("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
    match core.store.get(&ns_res.key(), "", ns) {
        None => Err(ApiError::not_found(&ns_res, ns)),
        Some(n) if n.value["metadata"]["deletionTimestamp"].is_string() => {
            Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                call.res.qualified_name(),
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Prepares a new object for the store (shared by POST and apply-on-create).
fn prepare_create(
    core: &Core,
    call: &Call,
    mut obj: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    check_type(&call.res, &mut obj)?;
    if let (Some(url_ns), Some(body_ns)) = (call.namespace(), obj["metadata"]["namespace"].as_str())
        && !body_ns.is_empty()
        && body_ns != url_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    check_namespace(core, call)?;
    stamp_new(&mut obj, call.namespace().filter(|_| call.res.namespaced));
    default_builtin(&call.res, &mut obj);
    initial_status(&call.res, &mut obj);
    if call.res.group.is_empty() && call.res.kind == "Secret" {
        patch::normalize_secret(&mut obj);
    }
    if let Err(cause) = require_name(&obj) {
        return Err(ApiError::invalid(&call.res, "", vec![cause]));
    }
    let warnings = validate(&call.res, &mut obj, None, field_validation(call))?;
    if is_crd(&call.res) {
        super::crds::prepare_crd(&mut obj)?;
    }
    Ok((obj, warnings))
}

fn is_crd(res: &ResourceInfo) -> bool {
    res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition"
}

pub fn create(core: &Arc<Core>, call: &Call) -> Result<Response<Body>, ApiError> {
    let body = decode_body(call)?;
    let (mut obj, warnings) = prepare_create(core, call, body)?;
    let lists = lists_for(&call.res);
    patch::record_update(
        None,
        &mut obj,
        &call.field_manager(),
        &call.res.api_version(),
        None,
        &now_rfc3339(),
        lists.as_ref(),
    );
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if call.dry_run() {
        return Ok(json_response(201, &obj));
    }
    let key = (ns, name.clone());
    if core.store.get(&call.key(), &key.0, &key.1).is_some() {
        return Err(ApiError::already_exists(&call.res, &name));
    }
    match core
        .store
        .commit(&call.key(), &key, None, Mutation::Put(obj))
    {
        Ok(change) => {
            after_commit(core, &call.res, &change.object);
            Ok(committed_response(201, &change.object, &warnings))
        }
        Err(CommitError::Raced) => Err(ApiError::already_exists(&call.res, &name)),
    }
}

/// Side effects of a stored write that other parts of the server follow.
fn after_commit(core: &Arc<Core>, res: &ResourceInfo, obj: &ObjRef) {
    super::super::gc::dependent_written(core, obj);
    if is_crd(res) {
        let established = obj.value["metadata"]["deletionTimestamp"].is_null();
        let spec = &obj.value["spec"];
        let group = spec["group"].as_str().unwrap_or_default();
        let plural = spec["names"]["plural"].as_str().unwrap_or_default();
        core.registry.remove(group, plural);
        if established {
            for info in resources_from_crd(&obj.value) {
                core.registry.insert(info);
            }
        }
    }
}

/// How the new state of an existing object is computed.
enum Edit<'a> {
    /// PUT: the body replaces the object.
    Replace(&'a Value),
    /// PATCH: the patch of `content_type` applied to the current state.
    Patch {
        content_type: &'a str,
        body: &'a [u8],
    },
}

pub fn update(core: &Arc<Core>, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let body = decode_body(call)?;
    if let Some(body_name) = body["metadata"]["name"].as_str()
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    edit(core, call, name, Edit::Replace(&body))
}

pub fn patch(core: &Arc<Core>, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let content_type = call
        .content_type()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    match content_type.as_str() {
        "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/apply-patch+yaml" => {}
        "application/strategic-merge-patch+json" if call.res.builtin => {}
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::unsupported_media_type("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".to_string()));
        }
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
            )));
        }
    }
    edit(
        core,
        call,
        name,
        Edit::Patch {
            content_type: &content_type,
            body: &call.body,
        },
    )
}

fn apply_patch(
    call: &Call,
    old: &Value,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let lists = lists_for(&call.res);
    match content_type {
        "application/merge-patch+json" => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut out = old.clone();
            json_patch::merge(&mut out, &p);
            Ok(out)
        }
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut out = old.clone();
            json_patch::patch(&mut out, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(out)
        }
        "application/strategic-merge-patch+json" => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            patch::strategic_merge(old, &p, &call.res.kind)
                .map_err(|e| ApiError::bad_request(e.to_string()))
        }
        "application/apply-patch+yaml" => {
            let applied =
                patch::parse_apply_body(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let opts = patch::ApplyOptions {
                manager: require_manager(call)?,
                force: call.flag("force"),
                api_version: call.res.api_version(),
                subresource: call.path.subresource.clone(),
                now: now_rfc3339(),
            };
            patch::apply(Some(old), &applied, &opts, lists.as_ref())
                .map_err(|e| apply_error(call, e))
        }
        _ => Err(ApiError::unsupported_media_type(content_type.to_string())),
    }
}

fn require_manager(call: &Call) -> Result<String, ApiError> {
    call.param("fieldManager").map(str::to_string).ok_or_else(|| {
        ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        )
    })
}

fn apply_error(call: &Call, e: patch::ApplyError) -> ApiError {
    let mut err = e.to_api_error();
    if let Some(d) = err.details.as_mut() {
        d["name"] = json!(call.path.name);
        d["group"] = json!(call.res.group);
        d["kind"] = json!(call.res.plural);
    }
    err
}

/// Computes the stored state after an edit of `old`.
fn next_state(
    call: &Call,
    old: &ObjRef,
    edit: &Edit<'_>,
) -> Result<(Value, Vec<String>), ApiError> {
    let name = old.name().to_string();
    let mut candidate = match edit {
        Edit::Replace(body) => (*body).clone(),
        Edit::Patch { content_type, body } => apply_patch(call, &old.value, content_type, body)?,
    };
    check_type(&call.res, &mut candidate)?;
    // A resourceVersion in the body (PUT) or in the patch is a precondition.
    let old_rv = old.value["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    match candidate["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && rv != old_rv => {
            return Err(ApiError::stale(&call.res, &name));
        }
        Some(rv) if !rv.is_empty() => {}
        _ => {
            if matches!(edit, Edit::Replace(_)) && !call.res.builtin {
                return Err(ApiError::invalid(
                    &call.res,
                    &name,
                    vec![FieldCause::new(
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )],
                ));
            }
        }
    }
    let mut new = match call.path.subresource.as_deref() {
        Some("status") => {
            let mut s = old.value.clone();
            match candidate.get("status") {
                Some(status) => s["status"] = status.clone(),
                None => {
                    if let Some(m) = s.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            s
        }
        _ => {
            if call.res.has_status {
                match old.value.get("status") {
                    Some(st) => candidate["status"] = st.clone(),
                    None => {
                        if let Some(m) = candidate.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            candidate
        }
    };
    carry_server_meta(&old.value, &mut new);
    if call.res.group.is_empty() && call.res.kind == "Secret" {
        patch::normalize_secret(&mut new);
    }
    bump_generation(&old.value, &mut new);
    let warnings = validate(
        &call.res,
        &mut new,
        Some(&old.value),
        field_validation(call),
    )?;
    if is_crd(&call.res) {
        super::crds::prepare_crd(&mut new)?;
    }
    let is_apply = matches!(edit, Edit::Patch { content_type, .. } if *content_type == "application/apply-patch+yaml");
    if !is_apply {
        let lists = lists_for(&call.res);
        patch::record_update(
            Some(&old.value),
            &mut new,
            &call.field_manager(),
            &call.res.api_version(),
            call.path.subresource.as_deref(),
            &now_rfc3339(),
            lists.as_ref(),
        );
    }
    Ok((new, warnings))
}

fn edit(
    core: &Arc<Core>,
    call: &Call,
    name: &str,
    edit: Edit<'_>,
) -> Result<Response<Body>, ApiError> {
    let ns = call.namespace().unwrap_or("").to_string();
    let key = (ns.clone(), name.to_string());
    for _ in 0..MAX_RACES {
        let Some(old) = core.store.get(&call.key(), &ns, name) else {
            // Server-side apply creates missing objects.
            if let Edit::Patch {
                content_type: "application/apply-patch+yaml",
                body,
            } = &edit
            {
                if call.path.subresource.is_some() {
                    return Err(ApiError::not_found(&call.res, name));
                }
                return apply_create(core, call, name, body);
            }
            return Err(ApiError::not_found(&call.res, name));
        };
        let (new, warnings) = next_state(call, &old, &edit)?;
        if same_content(&old.value, &new) {
            return Ok(committed_response(200, &old, &warnings));
        }
        if call.dry_run() {
            return Ok(json_response(200, &new));
        }
        let deleting = new["metadata"]["deletionTimestamp"].is_string();
        let mutation = if deleting && finalizers(&new).is_empty() {
            Mutation::Delete(new)
        } else {
            Mutation::Put(new)
        };
        let removed = matches!(mutation, Mutation::Delete(_));
        match core.store.commit(&call.key(), &key, Some(&old), mutation) {
            Ok(change) => {
                after_commit(core, &call.res, &change.object);
                if removed {
                    super::delete::after_delete(core, &call.res, &change.object);
                } else if deleting {
                    core.gc.enqueue_finalizing(&call.res, &change.object);
                }
                return Ok(committed_response(200, &change.object, &warnings));
            }
            Err(CommitError::Raced) => continue,
        }
    }
    Err(ApiError::conflict(
        &call.res,
        name,
        "too many concurrent writers; try again",
    ))
}

fn apply_create(
    core: &Arc<Core>,
    call: &Call,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let applied =
        patch::parse_apply_body(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut base = applied.clone();
    check_type(&call.res, &mut base)?;
    base["metadata"]["name"] = json!(name);
    let (mut obj, warnings) = prepare_create(core, call, base)?;
    let opts = patch::ApplyOptions {
        manager: require_manager(call)?,
        force: call.flag("force"),
        api_version: call.res.api_version(),
        subresource: None,
        now: now_rfc3339(),
    };
    let lists = lists_for(&call.res);
    let managed =
        patch::apply(None, &applied, &opts, lists.as_ref()).map_err(|e| apply_error(call, e))?;
    obj["metadata"]["managedFields"] = managed["metadata"]["managedFields"].clone();
    if call.dry_run() {
        return Ok(json_response(201, &obj));
    }
    let key = (call.namespace().unwrap_or("").to_string(), name.to_string());
    match core
        .store
        .commit(&call.key(), &key, None, Mutation::Put(obj))
    {
        Ok(change) => {
            after_commit(core, &call.res, &change.object);
            Ok(committed_response(201, &change.object, &warnings))
        }
        Err(CommitError::Raced) => Err(ApiError::conflict(
            &call.res,
            name,
            "the object was created concurrently; try again",
        )),
    }
}

/// GET of the scale subresource.
pub fn get_scale(core: &Arc<Core>, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let scale = call
        .res
        .scale
        .clone()
        .ok_or_else(|| ApiError::no_route(&format!("{}/scale", call.res.plural)))?;
    let ns = call.namespace().unwrap_or("");
    let obj = core
        .store
        .get(&call.key(), ns, name)
        .ok_or_else(|| ApiError::not_found(&call.res, name))?;
    let at = |path: &str| {
        let mut cur = &obj.value;
        for p in path.trim_start_matches('.').split('.') {
            cur = &cur[p];
        }
        cur.clone()
    };
    let mut status = json!({ "replicas": at(&scale.status_replicas_path).as_i64().unwrap_or(0) });
    if let Some(sel) = &scale.label_selector_path {
        status["selector"] = at(sel);
    }
    Ok(json_response(
        200,
        &json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": obj.uid(),
                "resourceVersion": obj.value["metadata"]["resourceVersion"],
                "creationTimestamp": obj.value["metadata"]["creationTimestamp"],
            },
            "spec": { "replicas": at(&scale.spec_replicas_path).as_i64().unwrap_or(0) },
            "status": status,
        }),
    ))
}

/// PUT or merge PATCH of the scale subresource: sets the spec replicas path.
pub fn write_scale(core: &Arc<Core>, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let scale = call
        .res
        .scale
        .clone()
        .ok_or_else(|| ApiError::no_route(&format!("{}/scale", call.res.plural)))?;
    let body: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding scale: {e}")))?;
    let replicas = body["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
    let mut patch_obj = json!({});
    let parts: Vec<&str> = scale
        .spec_replicas_path
        .trim_start_matches('.')
        .split('.')
        .collect();
    let mut cur = &mut patch_obj;
    for p in &parts[..parts.len().saturating_sub(1)] {
        cur = &mut cur[*p];
        *cur = json!({});
    }
    if let Some(last) = parts.last() {
        cur[*last] = json!(replicas);
    }
    let body = serde_json::to_vec(&patch_obj).unwrap_or_default();
    let main_call = Call {
        method: call.method.clone(),
        path: super::super::request::ResourcePath {
            subresource: None,
            ..call.path.clone()
        },
        res: call.res.clone(),
        query: call.query.clone(),
        headers: call.headers.clone(),
        body: body.clone().into(),
    };
    edit(
        core,
        &main_call,
        name,
        Edit::Patch {
            content_type: "application/merge-patch+json",
            body: &body,
        },
    )?;
    get_scale(core, call, name)
}
