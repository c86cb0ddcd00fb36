//! Sandbox routes: create, list, get, delete, metadata, renew, endpoints, pause/resume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::LifecycleState;
use super::backend::{Backend, Wait};
use super::error::ApiError;
use super::models::{
    CreateSandboxRequest, CreateSandboxResponse, Endpoint, ListSandboxesResponse, Pagination,
    RenewRequest, RenewResponse,
};
use super::pause;
use super::validate::{self, check_label, parse_bool, parse_int};
use super::workload::{self, RESERVED_PREFIX, build_batch_sandbox, pod_ip, to_sandbox};
use crate::crd::{BatchSandbox, SandboxPhase};

type State = web::Data<LifecycleState>;
type Result<T> = std::result::Result<T, ApiError>;

/// Deletes a half-created sandbox if the create request ends without success (timeout,
/// failure, or the client going away mid-wait).
struct Cleanup {
    backend: Arc<Backend>,
    name: String,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            let backend = self.backend.clone();
            let name = std::mem::take(&mut self.name);
            tokio::spawn(async move {
                if let Err(e) = backend.delete_sandbox(&name, &name).await
                    && e.status != StatusCode::NOT_FOUND
                {
                    tracing::warn!(sandbox = %name, error = %e, "cleanup of failed create failed");
                }
            });
        }
    }
}

fn lookup(state: &LifecycleState, id: &str) -> Result<Arc<BatchSandbox>> {
    state
        .backend
        .find(id)
        .ok_or_else(|| ApiError::sandbox_not_found(id))
}

pub async fn create(state: State, body: web::Json<CreateSandboxRequest>) -> Result<HttpResponse> {
    let started = Instant::now();
    let cfg = &state.config;
    let id = uuid::Uuid::new_v4().to_string();
    let body = body.into_inner();
    let secure = body.secure_access == Some(true);
    let mut spec = validate::create_spec(
        body,
        id.clone(),
        state.backend.namespace().to_string(),
        cfg.max_sandbox_timeout_seconds,
        Utc::now(),
    )?;
    if let Some(pool) = &spec.pool_ref
        && pool != crate::crd::keys::POOL_REF_AUTO
        && state.backend.pool(pool).is_none()
    {
        return Err(ApiError::pool_not_found(pool));
    }
    if secure {
        spec.access_token = Some(workload::new_access_token());
    }
    if let Some(snapshot) = spec.snapshot_id.clone() {
        let (image, pull_secret) = super::snapshots::restore_source(&state, &snapshot)?;
        spec.image = Some(image);
        spec.image_pull_secret = pull_secret;
    }
    let manifest = build_batch_sandbox(&spec, &cfg.executor_image, &cfg.image_pull_policy);
    let changes = state.backend.changes();
    let created = state.backend.create_sandbox(manifest).await?;
    if cfg.answer_pending {
        return Ok(HttpResponse::Accepted().json(CreateSandboxResponse::from(to_sandbox(&created))));
    }
    let mut cleanup = Cleanup {
        backend: state.backend.clone(),
        name: id.clone(),
        armed: true,
    };
    let key = (state.backend.namespace().to_string(), id.clone());
    let deadline = Instant::now() + Duration::from_secs(cfg.sandbox_create_timeout_seconds);
    let mut seen = false;
    let outcome = state
        .backend
        .wait(changes, deadline, |cache| match cache.sandbox(&key) {
            None if seen => Some(Err(ApiError::kube(
                "create sandbox",
                "the sandbox was deleted while starting",
            ))),
            None => None,
            Some(bs) => {
                seen = true;
                let phase = bs.status.as_ref().and_then(|s| s.phase);
                if phase == Some(SandboxPhase::Failed) {
                    let st = workload::sandbox_status(&bs);
                    Some(Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "KUBERNETES::POD_FAILED",
                        format!(
                            "Sandbox '{}' failed while starting: {}",
                            key.1,
                            st.message.unwrap_or_default()
                        ),
                    )))
                } else if pod_ip(&bs).is_some() {
                    Some(Ok(bs))
                } else {
                    None
                }
            }
        })
        .await;
    match outcome {
        Wait::Done(Ok(bs)) => {
            cleanup.armed = false;
            crate::metrics::pools::create_served(
                &key.0,
                bs.pool_ref(),
                started.elapsed().as_secs_f64(),
            );
            let mut sb = to_sandbox(&bs);
            if sb.status.state != "Running" {
                sb.status.state = "Running".into();
                sb.status.reason = Some("IP_ASSIGNED".into());
                sb.status.message =
                    Some("Pod has IP assigned and sandbox is ready for requests".into());
            }
            Ok(HttpResponse::Accepted().json(CreateSandboxResponse::from(sb)))
        }
        Wait::Done(Err(e)) => {
            crate::metrics::pools::failed(&key.0, created.pool_ref().unwrap_or(""), "pod_failed");
            Err(e)
        }
        Wait::TimedOut => Err(crate::metrics::pools::failed_with(
            &key.0,
            created.pool_ref(),
            "ready_timeout",
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "KUBERNETES::POD_READY_TIMEOUT",
                format!(
                    "Sandbox '{id}' did not get an address within {}s",
                    cfg.sandbox_create_timeout_seconds
                ),
            ),
        )),
    }
}

pub async fn list(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let mut states: Vec<String> = Vec::new();
    let mut metadata = BTreeMap::new();
    let (mut page, mut page_size) = (1usize, 20usize);
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "state" => states.push(v.to_ascii_lowercase()),
            "metadata" => metadata = validate::parse_metadata_filter(&v)?,
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
    let mut items: Vec<_> = state
        .backend
        .list()
        .iter()
        .map(|bs| to_sandbox(bs))
        .filter(|s| states.is_empty() || states.contains(&s.status.state.to_ascii_lowercase()))
        .filter(|s| {
            metadata.iter().all(|(k, v)| {
                s.metadata
                    .as_ref()
                    .and_then(|m| m.get(k))
                    .is_some_and(|x| x == v)
            })
        })
        .collect();
    items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let total_items = items.len();
    let total_pages = total_items.div_ceil(page_size);
    let items = items
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(HttpResponse::Ok().json(ListSandboxesResponse {
        items,
        pagination: Pagination {
            page,
            page_size,
            total_items,
            total_pages,
            has_next_page: page < total_pages,
        },
    }))
}

pub async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(to_sandbox(&*lookup(&state, &id)?)))
}

pub async fn delete(state: State, id: web::Path<String>) -> Result<HttpResponse> {
    let bs = lookup(&state, &id)?;
    let name = bs.metadata.name.clone().unwrap_or_default();
    state.backend.delete_sandbox(&name, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn patch_metadata(
    state: State,
    id: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse> {
    let mut labels = Map::new();
    for (k, v) in body.into_inner() {
        if k.starts_with(RESERVED_PREFIX) {
            return Err(ApiError::bad_request(
                "INVALID_METADATA_LABEL",
                format!("Metadata key '{k}' uses the reserved prefix '{RESERVED_PREFIX}'."),
            ));
        }
        match &v {
            Value::String(s) => check_label(&k, Some(s))?,
            Value::Null => check_label(&k, None)?,
            _ => {
                return Err(ApiError::validation(format!(
                    "metadata.{k}: value must be a string or null"
                )));
            }
        }
        labels.insert(k, v);
    }
    let bs = lookup(&state, &id)?;
    if labels.is_empty() {
        return Ok(HttpResponse::Ok().json(to_sandbox(&bs)));
    }
    let current = workload::user_metadata(&bs);
    let added = labels
        .iter()
        .filter(|(k, v)| !v.is_null() && !current.contains_key(*k))
        .count();
    if current.len() + added > validate::MAX_METADATA_ENTRIES {
        return Err(ApiError::bad_request(
            "SANDBOX::INVALID_METADATA_LABEL",
            format!(
                "At most {} metadata entries are allowed.",
                validate::MAX_METADATA_ENTRIES
            ),
        ));
    }
    let name = bs.metadata.name.clone().unwrap_or_default();
    let patched = state
        .backend
        .patch_sandbox(&name, &id, json!({"metadata": {"labels": labels}}))
        .await?;
    Ok(HttpResponse::Ok().json(to_sandbox(&patched)))
}

pub async fn renew(
    state: State,
    id: web::Path<String>,
    body: web::Json<RenewRequest>,
) -> Result<HttpResponse> {
    let at = workload::parse_time(&body.expires_at)
        .ok_or_else(|| ApiError::validation("expiresAt: invalid datetime"))?;
    if at <= Utc::now() {
        return Err(ApiError::bad_request(
            "DOCKER::INVALID_EXPIRATION",
            "New expiration time must be in the future.",
        ));
    }
    let bs = lookup(&state, &id)?;
    if bs.spec.expire_time.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "DOCKER::INVALID_EXPIRATION",
            format!("Sandbox {id} does not have automatic expiration enabled."),
        ));
    }
    let name = bs.metadata.name.clone().unwrap_or_default();
    let ts = workload::rfc3339(&at);
    state
        .backend
        .patch_sandbox(&name, &id, json!({"spec": {"expireTime": ts}}))
        .await?;
    Ok(HttpResponse::Ok().json(RenewResponse { expires_at: ts }))
}

/// Resolves the pod IP a port of a sandbox is reached at (404s as the SDK expects them).
pub fn resolve_ip(state: &LifecycleState, id: &str) -> Result<std::net::IpAddr> {
    let bs = lookup(state, id)?;
    pause::check_reachable(&bs, id)?;
    pod_ip(&bs)
        .and_then(|ip| ip.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "KUBERNETES::POD_IP_NOT_AVAILABLE",
                format!("Pod IP is not yet available for sandbox '{id}'"),
            )
        })
}

/// Validates a port path segment: 422 when not an integer, 400 when out of range.
pub fn parse_port(raw: &str) -> Result<u16> {
    let port: i64 = parse_int("port", raw)?;
    u16::try_from(port).ok().filter(|p| *p >= 1).ok_or_else(|| {
        ApiError::bad_request("DOCKER::INVALID_PORT", "Port must be between 1 and 65535.")
    })
}

pub async fn endpoint(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, port) = path.into_inner();
    let port = parse_port(&port)?;
    let mut use_proxy = false;
    let mut expires: Option<i64> = None;
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "use_server_proxy" => use_proxy = parse_bool("use_server_proxy", &v)?,
            "expires" => expires = Some(parse_int("expires", &v)?),
            _ => {}
        }
    }
    if use_proxy && expires.is_some() {
        return Err(ApiError::invalid_parameter(
            "use_server_proxy cannot be combined with expires; signed routes go through the ingress gateway.",
        ));
    }
    if expires.is_some() {
        return Err(ApiError::invalid_parameter(
            "Signed endpoints (expires) require ingress gateway mode, which is not configured.",
        ));
    }
    let ip = resolve_ip(&state, &id)?;
    let endpoint = if use_proxy {
        let base = match &state.config.eip {
            Some(eip) => eip.trim_end_matches('/').to_string(),
            None => {
                let prefix = if req.path().starts_with("/v1/") {
                    "/v1"
                } else {
                    ""
                };
                format!("{}{prefix}", req.connection_info().host())
            }
        };
        let base = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .unwrap_or(&base)
            .to_string();
        format!("{base}/sandboxes/{id}/proxy/{port}")
    } else if ip.is_ipv6() {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let sandbox = lookup(&state, &id)?;
    let headers = workload::access_token(&sandbox).map(|token| {
        BTreeMap::from([(workload::ACCESS_TOKEN_HEADER.to_string(), token.to_string())])
    });
    Ok(HttpResponse::Ok().json(Endpoint { endpoint, headers }))
}

pub async fn pause(state: State, id: web::Path<String>) -> Result<HttpResponse> {
    let bs = lookup(&state, &id)?;
    pause::check(&bs, pause::Intent::Pause)?;
    set_pause_intent(&state, &bs, &id, pause::Intent::Pause).await?;
    Ok(HttpResponse::Accepted().finish())
}

pub async fn resume(state: State, id: web::Path<String>) -> Result<HttpResponse> {
    let bs = lookup(&state, &id)?;
    pause::check(&bs, pause::Intent::Resume)?;
    set_pause_intent(&state, &bs, &id, pause::Intent::Resume).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Merge-patches `spec.pause`. After a failed attempt the same value would not change the
/// generation, so the "retry bridge" clears it first.
async fn set_pause_intent(
    state: &LifecycleState,
    bs: &BatchSandbox,
    id: &str,
    intent: pause::Intent,
) -> Result<()> {
    let name = bs.metadata.name.clone().unwrap_or_default();
    let value = intent == pause::Intent::Pause;
    if pause::needs_bridge(bs, intent) {
        state
            .backend
            .patch_sandbox(&name, id, json!({"spec": {"pause": null}}))
            .await?;
    }
    state
        .backend
        .patch_sandbox(&name, id, json!({"spec": {"pause": value}}))
        .await?;
    Ok(())
}
