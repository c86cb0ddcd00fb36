//! Snapshot routes (reference/lifecycle-api.md §3.9): a snapshot is a SandboxSnapshot the
//! SnapshotActor commits to the registry. Only where commits exist (Kubernetes mode); in
//! standalone mode creating one answers 501.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use super::LifecycleState;
use super::error::ApiError;
use super::models::Pagination;
use super::validate::parse_int;
use super::workload::{LABEL_ID, rfc3339};
use crate::actors::snapshot_policy::{self, SnapshotStrategy};
use crate::cache::objects::to_chrono;
use crate::crd::{SandboxPhase, SandboxSnapshot, SandboxSnapshotSpec, SnapshotPhase};

type State = web::Data<LifecycleState>;
type Result<T> = std::result::Result<T, ApiError>;

/// The snapshot's display name (the optional `name` of the create request).
const ANNOTATION_NAME: &str = "opensandbox.io/snapshot-name";

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "SNAPSHOT::NOT_FOUND",
        format!("Snapshot '{id}' not found"),
    )
}

/// `(state, reason, message)` of a snapshot as the API reports it.
pub fn snapshot_state(s: &SandboxSnapshot) -> (&'static str, String, String) {
    if s.metadata.deletion_timestamp.is_some() {
        return (
            "Deleting",
            "snapshot_deleting".into(),
            "Snapshot is being deleted.".into(),
        );
    }
    match s.status.as_ref().and_then(|st| st.phase) {
        Some(SnapshotPhase::Succeed) => (
            "Ready",
            "snapshot_ready".into(),
            "Snapshot is ready.".into(),
        ),
        Some(SnapshotPhase::Failed) => (
            "Failed",
            "snapshot_failed".into(),
            snapshot_policy::failure_message(s),
        ),
        _ => (
            "Creating",
            "snapshot_accepted".into(),
            "Snapshot creation accepted.".into(),
        ),
    }
}

fn to_json(s: &SandboxSnapshot) -> Value {
    let created = s
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| rfc3339(&to_chrono(&t.0)))
        .unwrap_or_else(|| rfc3339(&Utc::now()));
    let (state, reason, message) = snapshot_state(s);
    let mut v = json!({
        "id": s.name_any(),
        "sandboxId": s.labels().get(LABEL_ID).cloned().unwrap_or_else(|| s.spec.sandbox_name.clone()),
        "status": {"state": state, "reason": reason, "message": message, "lastTransitionAt": created},
        "createdAt": created,
    });
    if let Some(name) = s.annotations().get(ANNOTATION_NAME) {
        v["name"] = json!(name);
    }
    v
}

fn snapshots_api(state: &LifecycleState) -> Api<SandboxSnapshot> {
    Api::namespaced(state.backend.client().clone(), state.backend.namespace())
}

fn find(state: &LifecycleState, id: &str) -> Result<std::sync::Arc<SandboxSnapshot>> {
    state
        .backend
        .cache()
        .snapshot(&(state.backend.namespace().to_string(), id.to_string()))
        .filter(|s| s.labels().contains_key(LABEL_ID))
        .ok_or_else(|| not_found(id))
}

/// What a create with `snapshotId` starts: the snapshot's image, and the Secret to pull it.
pub fn restore_source(state: &LifecycleState, id: &str) -> Result<(String, Option<String>)> {
    let snapshot = find(state, id)?;
    match snapshot.status.as_ref().and_then(|st| st.phase) {
        Some(SnapshotPhase::Succeed) => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "SNAPSHOT::NOT_READY",
                format!("Snapshot '{id}' is not ready to restore from."),
            ));
        }
    }
    let image = snapshot
        .status
        .as_ref()
        .and_then(|st| st.containers.first())
        .map(|c| c.image_uri.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "SNAPSHOT::INVALID_RESTORE_CONFIG",
                format!("Snapshot '{id}' records no image to restore from."),
            )
        })?;
    Ok((image, state.restore_pull_secret.clone()))
}

pub async fn create(
    state: State,
    id: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> Result<HttpResponse> {
    let name = match body.as_ref().map(|b| &b.0).and_then(|b| b.get("name")) {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if !n.is_empty() => Some(n.clone()),
        Some(_) => return Err(ApiError::validation("name: must be a non-empty string")),
    };
    let bs = state
        .backend
        .find(&id)
        .ok_or_else(|| ApiError::sandbox_not_found(&id))?;
    if state.snapshot_strategy != SnapshotStrategy::Commit {
        return Err(ApiError::not_implemented(
            "SNAPSHOT::NOT_IMPLEMENTED",
            "Snapshots need an image registry; this runtime only supports pause/resume.",
        ));
    }
    if bs.status.as_ref().and_then(|s| s.phase) != Some(SandboxPhase::Succeed) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "SNAPSHOT::INVALID_SOURCE_STATE",
            format!("Sandbox '{id}' must be Running to be snapshotted"),
        ));
    }
    let snap_id = format!("osb-snap-{}", uuid::Uuid::new_v4().simple());
    let mut snap = SandboxSnapshot::new(
        &snap_id,
        SandboxSnapshotSpec {
            sandbox_name: bs.name_any(),
        },
    );
    snap.metadata.namespace = Some(state.backend.namespace().to_string());
    snap.metadata.labels = Some([(LABEL_ID.to_string(), id.to_string())].into());
    if let Some(n) = &name {
        snap.metadata.annotations = Some([(ANNOTATION_NAME.to_string(), n.clone())].into());
    }
    let created = snapshots_api(&state)
        .create(&PostParams::default(), &snap)
        .await
        .map_err(|e| ApiError::kube("create snapshot", e))?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/snapshots/{snap_id}")))
        .json(to_json(&created)))
}

pub async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(to_json(&*find(&state, &id)?)))
}

pub async fn delete(state: State, id: web::Path<String>) -> Result<HttpResponse> {
    let snap = find(&state, &id)?;
    if snapshot_state(&snap).0 == "Creating" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "SNAPSHOT::INVALID_STATE",
            format!("Snapshot '{id}' is still being created"),
        ));
    }
    match snapshots_api(&state)
        .delete(&id, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(not_found(&id)),
        Err(e) => Err(ApiError::kube("delete snapshot", e)),
    }
}

pub async fn list(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let (mut sandbox, mut name, mut states) = (None, None, Vec::new());
    let (mut page, mut page_size) = (1usize, 20usize);
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "sandboxId" => sandbox = Some(v.to_string()),
            "name" => name = Some(v.to_string()),
            "state" => states.push(v.to_ascii_lowercase()),
            "page" => page = parse_int("page", &v)?,
            "pageSize" => page_size = parse_int("pageSize", &v)?,
            _ => {}
        }
    }
    if page < 1 {
        return Err(ApiError::validation(
            "page: must be greater than or equal to 1",
        ));
    }
    if !(1..=200).contains(&page_size) {
        return Err(ApiError::validation("pageSize: must be between 1 and 200"));
    }
    let mut items: Vec<Value> = state
        .backend
        .cache()
        .snapshots(Some(state.backend.namespace()))
        .iter()
        .filter(|s| s.labels().contains_key(LABEL_ID))
        .map(|s| to_json(s))
        .filter(|v| {
            sandbox
                .as_ref()
                .is_none_or(|id| v["sandboxId"] == id.as_str())
        })
        .filter(|v| name.as_ref().is_none_or(|n| v["name"] == n.as_str()))
        .filter(|v| {
            states.is_empty()
                || states.contains(
                    &v["status"]["state"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                )
        })
        .collect();
    items.sort_by(|a, b| {
        b["createdAt"]
            .as_str()
            .cmp(&a["createdAt"].as_str())
            .then(a["id"].as_str().cmp(&b["id"].as_str()))
    });
    let total_items = items.len();
    let total_pages = total_items.div_ceil(page_size);
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "items": items,
        "pagination": Pagination {
            page,
            page_size,
            total_items,
            total_pages,
            has_next_page: page < total_pages,
        },
    })))
}
