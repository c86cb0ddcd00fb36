//! The request entry point: routing, fault injection, logging and response encoding.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::Value;

use super::faults::Faults;
use super::registry::{Registry, ResourceInfo, ResourceKey};
use super::reqlog::{LoggedRequest, RequestLog};
use super::request::{ResourcePath, Route, parse_query, route};
use super::status::ApiError;
use super::store::Store;
use super::{discovery, gc, openapi};

/// Response body: a full buffer or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Settings of one embedded API server.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    /// Changes kept per resource for watch replay; older resumes get 410 Expired.
    pub history_limit: usize,
    /// Largest accepted request body (the real server's limit is 3 MiB).
    pub max_body_bytes: usize,
    /// Interval between BOOKMARK events on watches that asked for them.
    pub bookmark_interval: Duration,
    /// Requests kept in the request log.
    pub request_log_limit: usize,
    /// HTTP clients must send their request headers within this long.
    pub header_read_timeout: Duration,
    /// HTTP clients must send their whole request body within this long (else 408).
    pub body_read_timeout: Duration,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self {
            history_limit: 50_000,
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(5),
            request_log_limit: 1_000_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything one server instance shares between requests.
pub struct Core {
    pub store: Store,
    pub registry: Registry,
    pub faults: Faults,
    pub log: RequestLog,
    pub config: ApiServerConfig,
    pub(crate) gc: gc::GcQueue,
    /// Address served over loopback HTTP, once serving (for legacy discovery).
    pub(crate) address: parking_lot::Mutex<Option<String>>,
    /// Runs `pods/exec` commands (the kubelet's job); None answers exec with 503.
    pub(crate) executor: parking_lot::RwLock<Option<Arc<dyn super::exec::PodExecutor>>>,
}

/// A parsed request, ready for a resource handler.
pub struct Call {
    pub method: Method,
    pub path: ResourcePath,
    pub res: Arc<ResourceInfo>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true") | Some("1"))
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE)
    }

    pub fn accept(&self) -> &str {
        self.header(header::ACCEPT)
    }

    pub fn user_agent(&self) -> &str {
        self.header(header::USER_AGENT)
    }

    pub fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// The field manager of a write: the query parameter, else the user agent's first word.
    pub fn field_manager(&self) -> String {
        match self.param("fieldManager") {
            Some(m) => m.to_string(),
            None => {
                let ua = self.user_agent();
                let prefix = ua.split('/').next().unwrap_or("").trim();
                if prefix.is_empty() {
                    "unknown".to_string()
                } else {
                    prefix.to_string()
                }
            }
        }
    }

    pub fn key(&self) -> ResourceKey {
        self.res.key()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }

    /// The request's kubernetes verb.
    pub fn verb(&self) -> &'static str {
        verb_of(&self.method, &self.path, &self.query)
    }
}

fn verb_of(method: &Method, path: &ResourcePath, query: &HashMap<String, String>) -> &'static str {
    let watch = matches!(
        query.get("watch").map(String::as_str),
        Some("true") | Some("1")
    );
    match *method {
        Method::GET if path.name.is_none() && watch => "watch",
        Method::GET if path.name.is_none() => "list",
        Method::GET if watch => "watch",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if path.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// A JSON response.
pub fn json_response(code: u16, value: &Value) -> Response<Body> {
    bytes_response(
        code,
        "application/json",
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// A response with a ready body.
pub fn bytes_response(code: u16, content_type: &str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The `Status` response of an error.
pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}

impl Core {
    pub fn new(config: ApiServerConfig) -> Arc<Self> {
        let core = Arc::new(Self {
            store: Store::new(config.history_limit),
            registry: Registry::with_builtins(),
            faults: Faults::default(),
            log: RequestLog::new(config.request_log_limit),
            gc: gc::GcQueue::default(),
            config,
            address: parking_lot::Mutex::new(None),
            executor: parking_lot::RwLock::new(None),
        });
        super::handlers::seed_namespaces(&core);
        core
    }

    /// Serves one request.
    pub async fn handle(self: &Arc<Self>, req: Request<Bytes>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parse_query(parts.uri.query());
        let r = route(&path, |g, v, p| {
            self.registry.get(g, v, p).is_some_and(|r| r.namespaced)
        });
        match r {
            Route::Version => json_response(200, &discovery::version_info()),
            Route::Health => bytes_response(200, "text/plain", Bytes::from_static(b"ok")),
            Route::ApiVersions
            | Route::ApiGroups
            | Route::Group { .. }
            | Route::GroupVersion { .. } => self.discovery(&r, &parts.headers),
            Route::OpenApiV2 => error_response(&ApiError::no_route(&path)),
            Route::OpenApiV3Root => json_response(200, &openapi::v3_root(&self.registry)),
            Route::OpenApiV3 { group, version } => {
                match openapi::v3_group_version(&self.registry, &group, &version) {
                    Some(doc) => json_response(200, &doc),
                    None => error_response(&ApiError::no_route(&path)),
                }
            }
            Route::NotFound => error_response(&ApiError::no_route(&path)),
            Route::Resource(rp) if super::exec::is_exec(&rp) => {
                super::exec::serve(self.clone(), rp, Request::from_parts(parts, body)).await
            }
            Route::Resource(rp) => {
                let Some(res) = self.registry.get(&rp.group, &rp.version, &rp.plural) else {
                    return error_response(&ApiError::no_route(&path));
                };
                let call = Call {
                    method: parts.method,
                    path: rp,
                    res,
                    query,
                    headers: parts.headers,
                    body,
                };
                self.resource(call).await
            }
        }
    }

    fn discovery(&self, r: &Route, headers: &HeaderMap) -> Response<Body> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (content_type, body) = match r {
            Route::ApiVersions => {
                let addr = self.address.lock().clone().unwrap_or_default();
                discovery::core_root(&self.registry, accept, &addr)
            }
            Route::ApiGroups => discovery::groups_root(&self.registry, accept),
            Route::Group { group } => match discovery::api_group_of(&self.registry, group) {
                Some(v) => (discovery::LEGACY_CONTENT_TYPE, v),
                None => return error_response(&ApiError::no_route(group)),
            },
            Route::GroupVersion { group, version } => {
                match discovery::api_resource_list(&self.registry, group, version) {
                    Some(v) => (discovery::LEGACY_CONTENT_TYPE, v),
                    None => {
                        return error_response(&ApiError::no_route(&format!("{group}/{version}")));
                    }
                }
            }
            _ => return error_response(&ApiError::no_route("")),
        };
        bytes_response(
            200,
            content_type,
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        )
    }

    async fn resource(self: &Arc<Self>, call: Call) -> Response<Body> {
        let verb = call.verb();
        let resource = match &call.path.subresource {
            Some(sub) => format!("{}/{}", call.res.plural, sub),
            None => call.res.plural.clone(),
        };
        self.faults.wait_unpaused().await;
        let decision = self.faults.decide_for(verb, &resource, call.user_agent());
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        let mut entry = LoggedRequest {
            verb: verb.to_string(),
            resource: resource.clone(),
            group: call.res.group.clone(),
            namespace: call.path.namespace.clone(),
            name: call.path.name.clone(),
            code: 0,
            user_agent: call.user_agent().to_string(),
            field_manager: call.param("fieldManager").map(str::to_string),
        };
        let resp = if let Some(code) = decision.error {
            error_response(&injected_error(code, &call))
        } else if call.body.len() > self.config.max_body_bytes {
            error_response(&ApiError::too_large(self.config.max_body_bytes))
        } else {
            match super::handlers::serve(self, &call).await {
                Ok(resp) => resp,
                Err(err) => error_response(&err),
            }
        };
        entry.code = resp.status().as_u16();
        self.log.record(entry);
        resp
    }
}

fn injected_error(code: u16, call: &Call) -> ApiError {
    let name = call.path.name.as_deref().unwrap_or("");
    match code {
        409 => ApiError::stale(&call.res, name),
        404 => ApiError::not_found(&call.res, name),
        429 => ApiError::too_many_requests("injected: too many requests, please try again later"),
        503 => ApiError::service_unavailable(
            "injected: the server is currently unable to handle the request",
        ),
        c => ApiError::new(c, "InternalError", format!("injected error {c}")),
    }
}
