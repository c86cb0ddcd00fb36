//! Pool routes (`/pools`): CRUD over Pool objects in the configured namespace.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::LifecycleState;
use super::config::RuntimeType;
use super::error::ApiError;
use super::models::{
    CapacitySpecBody, CreatePoolRequest, PoolResponse, PoolStatusBody, UpdatePoolRequest,
};
use super::workload::rfc3339;
use crate::crd::Pool;
use crate::standalone::apiserver::validation::is_dns1123_subdomain;

type State = web::Data<LifecycleState>;
type Result<T> = std::result::Result<T, ApiError>;

fn supported(state: &LifecycleState) -> Result<()> {
    if state.config.runtime_type != RuntimeType::Kubernetes {
        return Err(ApiError::not_implemented(
            "KUBERNETES::POOL_NOT_SUPPORTED",
            "Pools are only supported with the kubernetes runtime.",
        ));
    }
    Ok(())
}

fn check_capacity(c: &CapacitySpecBody) -> Result<()> {
    let fields = [
        ("bufferMax", c.buffer_max),
        ("bufferMin", c.buffer_min),
        ("poolMax", c.pool_max),
        ("poolMin", c.pool_min),
    ];
    for (name, v) in fields {
        if !(0..=i64::from(crate::crd::MAX_PODS)).contains(&v) {
            return Err(ApiError::validation(format!(
                "capacitySpec.{name}: must be between 0 and {}",
                crate::crd::MAX_PODS
            )));
        }
    }
    if c.buffer_min > c.buffer_max {
        return Err(ApiError::validation(
            "capacitySpec: bufferMin must not exceed bufferMax",
        ));
    }
    if c.pool_min > c.pool_max {
        return Err(ApiError::validation(
            "capacitySpec: poolMin must not exceed poolMax",
        ));
    }
    Ok(())
}

fn to_response(p: &Pool) -> PoolResponse {
    let c = &p.spec.capacity_spec;
    PoolResponse {
        name: p.metadata.name.clone().unwrap_or_default(),
        capacity_spec: CapacitySpecBody {
            buffer_max: c.buffer_max.into(),
            buffer_min: c.buffer_min.into(),
            pool_max: c.pool_max.into(),
            pool_min: c.pool_min.into(),
        },
        status: p.status.as_ref().map(|s| PoolStatusBody {
            total: s.total,
            allocated: s.allocated,
            available: s.available,
            revision: s.revision.clone(),
        }),
        created_at: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| rfc3339(&crate::cache::objects::to_chrono(&t.0))),
    }
}

fn is_pool_name(name: &str) -> bool {
    name.len() <= 253 && is_dns1123_subdomain(name).is_ok()
}

pub async fn create(state: State, body: web::Json<CreatePoolRequest>) -> Result<HttpResponse> {
    supported(&state)?;
    let req = body.into_inner();
    if !is_pool_name(&req.name) {
        return Err(ApiError::validation(format!(
            "name: {:?} must be a lowercase RFC 1123 subdomain of at most 253 characters",
            req.name
        )));
    }
    check_capacity(&req.capacity_spec)?;
    let pool = json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1",
        "kind": "Pool",
        "metadata": {"name": req.name, "namespace": state.backend.namespace()},
        "spec": {"template": req.template, "capacitySpec": req.capacity_spec},
    });
    let created = state.backend.create_pool(pool).await?;
    Ok(HttpResponse::Created().json(to_response(&created)))
}

pub async fn list(state: State) -> Result<HttpResponse> {
    supported(&state)?;
    let mut items: Vec<PoolResponse> = state
        .backend
        .pools()
        .iter()
        .map(|p| to_response(p))
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

pub async fn get(state: State, name: web::Path<String>) -> Result<HttpResponse> {
    supported(&state)?;
    let pool = state
        .backend
        .pool(&name)
        .ok_or_else(|| ApiError::pool_not_found(&name))?;
    Ok(HttpResponse::Ok().json(to_response(&pool)))
}

pub async fn update(
    state: State,
    name: web::Path<String>,
    body: web::Json<UpdatePoolRequest>,
) -> Result<HttpResponse> {
    supported(&state)?;
    check_capacity(&body.capacity_spec)?;
    if state.backend.pool(&name).is_none() {
        return Err(ApiError::pool_not_found(&name));
    }
    let patched = state
        .backend
        .patch_pool(&name, json!({"spec": {"capacitySpec": body.capacity_spec}}))
        .await?;
    Ok(HttpResponse::Ok().json(to_response(&patched)))
}

pub async fn delete(state: State, name: web::Path<String>) -> Result<HttpResponse> {
    supported(&state)?;
    // No pool can have an invalid name (and it may not even fit in a request URI).
    if !is_pool_name(&name) {
        return Err(ApiError::pool_not_found(&name));
    }
    state.backend.delete_pool(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}
