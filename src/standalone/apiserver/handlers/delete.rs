//! DELETE and DELETE collection, finalizers and deletion propagation.

use std::sync::Arc;

use http::Response;
use serde_json::{Value, json};

use super::super::objects::now_rfc3339;
use super::super::protobuf;
use super::super::registry::ResourceInfo;
use super::super::server::{Body, Call, Core, bytes_response, json_response};
use super::super::status::ApiError;
use super::super::store::{CommitError, Mutation, ObjRef};
use super::read::request_filter;

/// How dependents of a deleted object are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Parsed `DeleteOptions` (from the body, JSON or protobuf, or the query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
pub const FINALIZER_ORPHAN: &str = "orphan";

fn parse_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let body: Value = if call.body.is_empty() {
        json!({})
    } else if protobuf::is_protobuf(call.content_type()) {
        // Undecodable protobuf delete options mean defaults (helm sends an empty message).
        protobuf::decode(&call.body).unwrap_or_else(|_| json!({}))
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or_else(|| call.param("propagationPolicy"))
        .map(str::to_string);
    let propagation = match policy.as_deref() {
        None => match body["orphanDependents"]
            .as_bool()
            .or_else(|| call.param("orphanDependents").map(|v| v == "true"))
        {
            Some(true) => Some(Propagation::Orphan),
            _ => None,
        },
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            ));
        }
    };
    let dry_run = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"))
        || call.dry_run();
    Ok(DeleteOptions {
        propagation,
        dry_run,
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    })
}

pub fn delete(core: &Arc<Core>, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let opts = parse_options(call)?;
    let ns = call.namespace().unwrap_or("");
    let (code, obj) = delete_object(core, &call.res, ns, name, &opts)?;
    Ok(bytes_response(code, "application/json", obj.json.clone()))
}

/// Deletes one object: marks it when finalizers remain, removes it otherwise.
/// Returns 200 (gone) or 202 (waiting for finalizers) and the resulting state.
pub fn delete_object(
    core: &Arc<Core>,
    res: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(u16, ObjRef), ApiError> {
    let key = (ns.to_string(), name.to_string());
    loop {
        let old = core
            .store
            .get(&res.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(res, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid != old.uid()
        {
            return Err(ApiError::conflict(
                res,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old.uid()
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv {
            let cur = old.value["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("");
            if rv != cur {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {cur}"
                    ),
                ));
            }
        }
        if opts.dry_run {
            return Ok((200, old));
        }
        let mut finalizers: Vec<String> = old.value["metadata"]["finalizers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let extra = match opts.propagation {
            Some(Propagation::Foreground) => Some(FINALIZER_FOREGROUND),
            Some(Propagation::Orphan) => Some(FINALIZER_ORPHAN),
            _ => None,
        };
        let mut added = false;
        if let Some(f) = extra
            && !core.store.dependents(old.uid()).is_empty()
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_string());
            added = true;
        }
        let already_deleting = old.value["metadata"]["deletionTimestamp"].is_string();
        if finalizers.is_empty() {
            match core.store.commit(
                &res.key(),
                &key,
                Some(&old),
                Mutation::Delete(old.value.clone()),
            ) {
                Ok(change) => {
                    after_delete(core, res, &change.object);
                    return Ok((200, change.object.clone()));
                }
                Err(CommitError::Raced) => continue,
            }
        }
        if already_deleting && !added {
            return Ok((202, old));
        }
        let mut new = old.value.clone();
        if !already_deleting {
            new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        new["metadata"]["finalizers"] = json!(finalizers);
        match core
            .store
            .commit(&res.key(), &key, Some(&old), Mutation::Put(new))
        {
            Ok(change) => {
                core.gc.enqueue_finalizing(res, &change.object);
                return Ok((202, change.object.clone()));
            }
            Err(CommitError::Raced) => continue,
        }
    }
}

/// Follow-up work once an object is gone: garbage collection of its dependents, CRD and
/// namespace cleanup.
pub fn after_delete(core: &Arc<Core>, res: &ResourceInfo, obj: &ObjRef) {
    core.gc.enqueue_owner_gone(obj.uid());
    super::super::gc::dependent_gone(core, obj);
    if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
        super::crds::remove_crd(core, &obj.value);
    }
    if res.group.is_empty() && res.kind == "Namespace" {
        core.gc.enqueue_namespace_gone(obj.name());
    }
}

pub fn delete_collection(core: &Arc<Core>, call: &Call) -> Result<Response<Body>, ApiError> {
    let opts = parse_options(call)?;
    let filter = request_filter(call)?;
    let (items, rv) = core.store.list(&call.key(), call.namespace());
    let mut deleted = Vec::new();
    for obj in items.into_iter().filter(|o| filter.matches(&o.value)) {
        match delete_object(core, &call.res, obj.namespace(), obj.name(), &opts) {
            Ok((_, o)) => deleted.push(o.value.clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        200,
        &json!({
            "kind": call.res.list_kind,
            "apiVersion": call.res.api_version(),
            "metadata": { "resourceVersion": rv.to_string() },
            "items": deleted,
        }),
    ))
}
