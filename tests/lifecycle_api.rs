//! Contract tests of the SDK lifecycle API against the embedded API server and a real
//! informer cache. The tests play the BatchSandbox controller themselves: they patch the
//! status and the endpoints annotation of what the API creates.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use common::api_server;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use opensandbox::cache::{Cache, InformerConfig};
use opensandbox::crd::{BatchSandbox, keys};
use opensandbox::http::lifecycle::{LifecycleState, ServerConfig, configure};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

const KEY: &str = "secret-key";
const H: &str = "OPEN-SANDBOX-API-KEY";

struct Env {
    s: ApiServer,
    state: web::Data<LifecycleState>,
    _informers: Vec<JoinHandle<()>>,
}

async fn env(cfg: ServerConfig) -> Env {
    let s = api_server().await;
    let cache = Cache::new();
    let informers =
        opensandbox::cache::informer::start(s.client(), cache.clone(), &InformerConfig::default());
    cache.wait_synced().await;
    let state = web::Data::new(LifecycleState::new(s.client(), cache, cfg));
    Env {
        s,
        state,
        _informers: informers,
    }
}

fn cfg() -> ServerConfig {
    ServerConfig {
        api_key: Some(KEY.into()),
        sandbox_create_timeout_seconds: 10,
        max_sandbox_timeout_seconds: Some(86400),
        executor_image: "opensandbox/executor:test".into(),
        ..ServerConfig::default()
    }
}

macro_rules! app {
    ($env:expr) => {{
        let st = $env.state.clone();
        test::init_service(App::new().configure(move |c| configure(c, st.clone()))).await
    }};
}

/// Plays the controller: every BatchSandbox without an address gets phase Succeed, ready 1
/// and the endpoints annotation.
fn fake_controller(client: Client, ip: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<BatchSandbox> = Api::namespaced(client, "default");
        loop {
            if let Ok(list) = api.list(&ListParams::default()).await {
                for bs in list.items {
                    if bs.annotations().contains_key(keys::ANNOTATION_ENDPOINTS) {
                        continue;
                    }
                    let name = bs.name_any();
                    let _ = api
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"status": {"phase": "Succeed", "ready": 1, "replicas": 1, "allocated": 1}})),
                        )
                        .await;
                    let _ = api
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"annotations": {keys::ANNOTATION_ENDPOINTS: format!("[\"{ip}\"]")}}})),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn sdk_body() -> Value {
    json!({"image": {"uri": "python:3.11"}, "timeout": 600,
           "resourceLimits": {"cpu": "1", "memory": "2Gi"},
           "entrypoint": ["tail", "-f", "/dev/null"], "secureAccess": false,
           "metadata": {"team": "infra", "project": "alpha"}})
}

async fn body_json(resp: actix_web::dev::ServiceResponse) -> Value {
    let bytes = test::read_body(resp).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

fn get(uri: &str) -> test::TestRequest {
    test::TestRequest::get().uri(uri).insert_header((H, KEY))
}

fn post(uri: &str, body: Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri(uri)
        .insert_header((H, KEY))
        .set_json(body)
}

async fn sandboxes(s: &ApiServer) -> Vec<BatchSandbox> {
    let api: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    api.list(&ListParams::default()).await.unwrap().items
}

async fn eventually<F: FnMut() -> bool>(what: &str, mut f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn assert_no_nulls(v: &Value) {
    match v {
        Value::Null => panic!("null in response"),
        Value::Object(m) => m.values().for_each(assert_no_nulls),
        Value::Array(a) => a.iter().for_each(assert_no_nulls),
        _ => {}
    }
}

#[actix_rt::test]
async fn sandbox_lifecycle_contract() {
    let e = env(cfg()).await;
    let _ctl = fake_controller(e.s.client(), "10.1.2.3");
    let app = app!(e);

    // Auth: missing and wrong key, both with the exact envelope and a request id.
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/v1/sandboxes")
            .set_json(sdk_body())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 401);
    let rid = r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(rid.len(), 32);
    assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        body_json(r).await,
        json!({"code": "MISSING_API_KEY", "message": "Authentication credentials are missing. Provide API key via OPEN-SANDBOX-API-KEY header."})
    );
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/v1/sandboxes")
            .insert_header((H, "wrong"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(body_json(r).await["code"], "INVALID_API_KEY");

    // Create: exactly 202, Running, mandatory keys, no nulls, request id echoed.
    let r = test::call_service(
        &app,
        post("/v1/sandboxes", sdk_body())
            .insert_header(("X-Request-ID", " my-req "))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers().get("x-request-id").unwrap(), "my-req");
    let created = body_json(r).await;
    assert_no_nulls(&created);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(created["status"]["state"], "Running");
    assert_eq!(created["entrypoint"], json!(["tail", "-f", "/dev/null"]));
    assert_eq!(
        created["metadata"],
        json!({"team": "infra", "project": "alpha"})
    );
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(created["expiresAt"].as_str().is_some());
    assert!(created.get("platform").is_none());

    // The BatchSandbox: template mode with the executor injected and our labels.
    let bs = sandboxes(&e.s)
        .await
        .into_iter()
        .find(|b| b.name_any() == id)
        .unwrap();
    assert_eq!(bs.labels()["opensandbox.io/id"], id);
    assert_eq!(bs.labels()["team"], "infra");
    assert_eq!(bs.spec.replicas, 1);
    assert!(bs.spec.expire_time.is_some());
    let t = bs.spec.template.clone().unwrap();
    assert_eq!(t["metadata"]["labels"][keys::LABEL_MANAGED], "true");
    assert_eq!(
        t["spec"]["initContainers"][0]["image"],
        "opensandbox/executor:test"
    );
    assert_eq!(
        t["spec"]["containers"][0]["command"],
        json!([
            "/opt/opensandbox/bin/opensandbox-executor",
            "--",
            "tail",
            "-f",
            "/dev/null"
        ])
    );
    assert_eq!(t["spec"]["containers"][0]["image"], "python:3.11");
    assert_eq!(
        t["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "2Gi"
    );

    // Get, at /v1 and at the root.
    for base in ["/v1", ""] {
        let r = test::call_service(&app, get(&format!("{base}/sandboxes/{id}")).to_request()).await;
        assert_eq!(r.status(), 200);
        let sb = body_json(r).await;
        assert_no_nulls(&sb);
        assert_eq!(sb["id"], id.as_str());
        assert_eq!(sb["image"]["uri"], "python:3.11");
        assert_eq!(sb["status"]["state"], "Running");
        assert_eq!(sb["status"]["reason"], "RUNNING");
        assert_eq!(sb["entrypoint"], json!(["tail", "-f", "/dev/null"]));
    }
    let r = test::call_service(&app, get("/v1/sandboxes/does-not-exist").to_request()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(body_json(r).await["code"], "KUBERNETES::SANDBOX_NOT_FOUND");

    // A second sandbox without timeout: no expiresAt, manual cleanup.
    let mut b2 = sdk_body();
    b2["timeout"] = Value::Null;
    b2["metadata"] = json!({"team": "a.b"});
    let r = test::call_service(&app, post("/v1/sandboxes", b2).to_request()).await;
    assert_eq!(r.status(), 202);
    let second = body_json(r).await;
    assert!(second.get("expiresAt").is_none());
    let id2 = second["id"].as_str().unwrap().to_string();

    // List: envelope, filters, pagination, errors.
    let r = test::call_service(&app, get("/v1/sandboxes").to_request()).await;
    assert_eq!(r.status(), 200);
    let l = body_json(r).await;
    assert_eq!(
        l["pagination"],
        json!({"page": 1, "pageSize": 20, "totalItems": 2, "totalPages": 1, "hasNextPage": false})
    );
    let r = test::call_service(
        &app,
        get("/v1/sandboxes?metadata=team%3Da%252Eb").to_request(),
    )
    .await;
    let l = body_json(r).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["items"][0]["id"], id2.as_str());
    let r = test::call_service(
        &app,
        get("/v1/sandboxes?state=running&state=Paused&pageSize=1&page=2").to_request(),
    )
    .await;
    let l = body_json(r).await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["pagination"]["totalPages"], 2);
    assert_eq!(l["pagination"]["hasNextPage"], false);
    let r = test::call_service(&app, get("/v1/sandboxes?state=Paused").to_request()).await;
    assert_eq!(body_json(r).await["pagination"]["totalItems"], 0);
    let r = test::call_service(
        &app,
        get("/v1/sandboxes?metadata=team%3Dinfra%26broken").to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(r).await["code"], "INVALID_METADATA_FORMAT");
    for q in ["page=0", "pageSize=201", "page=x"] {
        let r = test::call_service(&app, get(&format!("/v1/sandboxes?{q}")).to_request()).await;
        assert_eq!(r.status(), 422, "{q}");
    }

    // Endpoints: direct pod IP for execd and 18080, server proxy form, errors.
    for port in [44772, 18080] {
        let r = test::call_service(
            &app,
            get(&format!(
                "/v1/sandboxes/{id}/endpoints/{port}?use_server_proxy=false"
            ))
            .to_request(),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            body_json(r).await,
            json!({"endpoint": format!("10.1.2.3:{port}")})
        );
    }
    let r = test::call_service(
        &app,
        get(&format!(
            "/v1/sandboxes/{id}/endpoints/44772?use_server_proxy=true"
        ))
        .insert_header(("Host", "api.local:8080"))
        .to_request(),
    )
    .await;
    assert_eq!(
        body_json(r).await["endpoint"],
        format!("api.local:8080/v1/sandboxes/{id}/proxy/44772")
    );
    let r = test::call_service(
        &app,
        get(&format!(
            "/v1/sandboxes/{id}/endpoints/44772?use_server_proxy=true&expires=123"
        ))
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    let err = body_json(r).await;
    assert_eq!(err["code"], "SANDBOX::INVALID_PARAMETER");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("use_server_proxy cannot be combined with expires")
    );
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/endpoints/abc")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/endpoints/70000")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(r).await["code"], "DOCKER::INVALID_PORT");

    // Renew.
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(2)).to_rfc3339();
    let r = test::call_service(
        &app,
        post(
            &format!("/v1/sandboxes/{id}/renew-expiration"),
            json!({"expiresAt": future}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let renewed = body_json(r).await;
    assert!(renewed["expiresAt"].as_str().unwrap().ends_with('Z'));
    let r = test::call_service(
        &app,
        post(
            &format!("/v1/sandboxes/{id}/renew-expiration"),
            json!({"expiresAt": "2001-01-01T00:00:00Z"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(r).await["code"], "DOCKER::INVALID_EXPIRATION");
    let r = test::call_service(
        &app,
        post(
            &format!("/v1/sandboxes/{id}/renew-expiration"),
            json!({"expiresAt": "not-a-datetime"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = test::call_service(
        &app,
        post(
            &format!("/v1/sandboxes/{id2}/renew-expiration"),
            json!({"expiresAt": future}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(body_json(r).await["code"], "DOCKER::INVALID_EXPIRATION");

    // Metadata merge patch.
    let patch = |body: Value| {
        test::TestRequest::patch()
            .uri(&format!("/v1/sandboxes/{id}/metadata"))
            .insert_header((H, KEY))
            .set_json(body)
            .to_request()
    };
    let r = test::call_service(&app, patch(json!({"owner": "bob", "project": null}))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        body_json(r).await["metadata"],
        json!({"team": "infra", "owner": "bob"})
    );
    let r = test::call_service(&app, patch(json!({"opensandbox.io/id": null}))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(r).await["code"], "INVALID_METADATA_LABEL");
    let r = test::call_service(&app, patch(json!({"bad key": "x"}))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        body_json(r).await["code"],
        "SANDBOX::INVALID_METADATA_LABEL"
    );

    // Pause/resume: phase checks, then `spec.pause` intent for the controller.
    let call = |p: &str| post(&format!("/v1/sandboxes/{id}/{p}"), json!({})).to_request();
    let r = test::call_service(&app, call("resume")).await;
    assert_eq!(r.status(), 409);
    let b = body_json(r).await;
    assert_eq!(b["code"], "KUBERNETES::INVALID_STATE");
    assert_eq!(
        b["message"],
        "Cannot resume sandbox in phase Succeed, expected Paused"
    );
    let r = test::call_service(&app, call("pause")).await;
    assert_eq!(r.status(), 202);
    assert!(test::read_body(r).await.is_empty());
    let bs_api: Api<BatchSandbox> = Api::namespaced(e.s.client(), "default");
    assert_eq!(bs_api.get(&id).await.unwrap().spec.pause, Some(true));
    bs_api
        .patch_status(
            &id,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Paused"}})),
        )
        .await
        .unwrap();
    eventually("cache sees Paused", || {
        e.state.backend.find(&id).is_some_and(|b| {
            b.status.as_ref().and_then(|s| s.phase) == Some(opensandbox::crd::SandboxPhase::Paused)
        })
    })
    .await;
    let r = test::call_service(&app, call("pause")).await;
    assert_eq!(r.status(), 409);
    assert_eq!(body_json(r).await["message"], "Sandbox is already paused");
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/endpoints/44772")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        body_json(r).await["code"],
        "KUBERNETES::POD_IP_NOT_AVAILABLE"
    );
    let r = test::call_service(&app, get(&format!("/v1/sandboxes/{id}")).to_request()).await;
    assert_eq!(body_json(r).await["status"]["state"], "Paused");
    let r = test::call_service(&app, call("resume")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(bs_api.get(&id).await.unwrap().spec.pause, Some(false));
    let r = test::call_service(&app, call("pause")).await;
    assert_eq!(
        r.status(),
        409,
        "still Paused until the controller resumes it"
    );
    let r = test::call_service(
        &app,
        post("/v1/sandboxes/does-not-exist/pause", json!({})).to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
    bs_api
        .patch_status(
            &id,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeed"}})),
        )
        .await
        .unwrap();

    // Snapshots: a SandboxSnapshot the controller commits; state follows its phase.
    eventually("cache sees Succeed", || {
        e.state.backend.find(&id).is_some_and(|b| {
            b.status.as_ref().and_then(|s| s.phase) == Some(opensandbox::crd::SandboxPhase::Succeed)
        })
    })
    .await;
    let r = test::call_service(
        &app,
        post(
            &format!("/v1/sandboxes/{id}/snapshots"),
            json!({"name": "first"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let location = r
        .headers()
        .get("Location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let snap = body_json(r).await;
    let sid = snap["id"].as_str().unwrap().to_string();
    assert!(sid.starts_with("osb-snap-") && sid.len() == 9 + 32, "{sid}");
    assert_eq!(location, format!("/v1/snapshots/{sid}"));
    assert_eq!(snap["sandboxId"], id.as_str());
    assert_eq!(snap["name"], "first");
    assert_eq!(snap["status"]["state"], "Creating");
    assert_eq!(snap["status"]["reason"], "snapshot_accepted");
    assert!(snap["createdAt"].is_string());
    eventually("cache sees the snapshot", || {
        e.state
            .backend
            .cache()
            .snapshot(&("default".to_string(), sid.clone()))
            .is_some()
    })
    .await;
    let r = test::call_service(
        &app,
        get(&format!("/v1/snapshots?sandboxId={id}&state=Creating")).to_request(),
    )
    .await;
    let listed = body_json(r).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["pagination"]["totalItems"], 1);
    let r = test::call_service(&app, get("/v1/snapshots?name=other").to_request()).await;
    assert_eq!(body_json(r).await["items"], json!([]));
    let del = |sid: &str| {
        test::TestRequest::delete()
            .uri(&format!("/v1/snapshots/{sid}"))
            .insert_header((H, KEY))
            .to_request()
    };
    let r = test::call_service(&app, del(&sid)).await;
    assert_eq!(r.status(), 409);
    assert_eq!(body_json(r).await["code"], "SNAPSHOT::INVALID_STATE");
    let snaps: Api<opensandbox::crd::SandboxSnapshot> = Api::namespaced(e.s.client(), "default");
    // Restoring from a snapshot that is still being committed is refused.
    let restore =
        json!({"snapshotId": sid, "timeout": 600, "resourceLimits": {"cpu": "1", "memory": "1Gi"}});
    let r = test::call_service(&app, post("/v1/sandboxes", restore.clone()).to_request()).await;
    assert_eq!(r.status(), 409);
    assert_eq!(body_json(r).await["code"], "SNAPSHOT::NOT_READY");
    let snap_image = "registry.example.com/snaps/sb-sandbox:snap-gen1";
    snaps
        .patch_status(
            &sid,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeed",
                "containers": [{"containerName": "sandbox", "imageUri": snap_image}]}})),
        )
        .await
        .unwrap();
    eventually("cache sees the snapshot ready", || {
        e.state
            .backend
            .cache()
            .snapshot(&("default".to_string(), sid.clone()))
            .is_some_and(|s| s.status.is_some())
    })
    .await;
    let r = test::call_service(&app, get(&format!("/v1/snapshots/{sid}")).to_request()).await;
    assert_eq!(body_json(r).await["status"]["state"], "Ready");
    // Restore: a new sandbox from the snapshot's image, with the SDK's default entrypoint.
    let r = test::call_service(&app, post("/v1/sandboxes", restore).to_request()).await;
    assert_eq!(r.status(), 202);
    let restored = body_json(r).await["id"].as_str().unwrap().to_string();
    let bs = sandboxes(&e.s)
        .await
        .into_iter()
        .find(|b| b.name_any() == restored)
        .unwrap();
    let container = &bs.spec.template.as_ref().unwrap()["spec"]["containers"][0];
    assert_eq!(container["image"], snap_image);
    assert_eq!(
        container["command"],
        json!([
            "/opt/opensandbox/bin/opensandbox-executor",
            "--",
            "tail",
            "-f",
            "/dev/null"
        ])
    );
    assert_eq!(bs.labels()["opensandbox.io/snapshot-id"], sid.as_str());
    let r = test::call_service(&app, get(&format!("/v1/sandboxes/{restored}")).to_request()).await;
    let got = body_json(r).await;
    assert_eq!(got["snapshotId"], sid.as_str());
    assert!(got.get("image").is_none(), "{got}");
    let r = test::call_service(
        &app,
        post(
            "/v1/sandboxes",
            json!({"snapshotId": "osb-snap-missing", "timeout": 60, "resourceLimits": {"cpu": "1", "memory": "1Gi"}}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(body_json(r).await["code"], "SNAPSHOT::NOT_FOUND");
    let r = test::call_service(&app, del(&sid)).await;
    assert_eq!(r.status(), 204);
    let r = test::call_service(&app, get("/v1/snapshots/osb-snap-missing").to_request()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(body_json(r).await["code"], "SNAPSHOT::NOT_FOUND");
    let r = test::call_service(
        &app,
        post("/v1/sandboxes/does-not-exist/snapshots", json!({})).to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);

    // Delete: 204 empty, then 404.
    let r = test::call_service(
        &app,
        test::TestRequest::delete()
            .uri(&format!("/v1/sandboxes/{id}"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = test::call_service(
        &app,
        test::TestRequest::delete()
            .uri(&format!("/v1/sandboxes/{id}"))
            .insert_header((H, KEY))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert!(test::read_body(r).await.is_empty());
    let st = e.state.clone();
    eventually("sandbox gone from the cache", || {
        st.backend.find(&id).is_none()
    })
    .await;
    let r = test::call_service(
        &app,
        test::TestRequest::delete()
            .uri(&format!("/v1/sandboxes/{id}"))
            .insert_header((H, KEY))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
}

#[actix_rt::test]
async fn create_validation_errors() {
    let mut c = cfg();
    c.max_body_bytes = 4096;
    let e = env(c).await;
    let app = app!(e);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"timeout": 10}), 422, "INVALID_REQUEST"),
        (
            {
                let mut b = sdk_body();
                b["timeout"] = json!(10);
                b
            },
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b["timeout"] = json!(-1);
                b
            },
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b["timeout"] = json!("ten");
                b
            },
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b["timeout"] = json!(86401);
                b
            },
            400,
            "SANDBOX::INVALID_PARAMETER",
        ),
        (
            {
                let mut b = sdk_body();
                b["timeout"] = json!(1e40);
                b
            },
            400,
            "SANDBOX::INVALID_PARAMETER",
        ),
        (
            {
                let mut b = sdk_body();
                b["entrypoint"] = json!([]);
                b
            },
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b.as_object_mut().unwrap().remove("resourceLimits");
                b
            },
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b["image"]["uri"] = json!("  ");
                b
            },
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b["metadata"] = json!({"opensandbox.io/x": "y"});
                b
            },
            400,
            "SANDBOX::INVALID_METADATA_LABEL",
        ),
        (
            {
                let mut b = sdk_body();
                b["metadata"] = json!({"k": "v".repeat(64)});
                b
            },
            400,
            "SANDBOX::INVALID_METADATA_LABEL",
        ),
        (
            {
                let mut b = sdk_body();
                b["platform"] = json!({"os": "plan9", "arch": "amd64"});
                b
            },
            400,
            "SANDBOX::INVALID_PARAMETER",
        ),
        (
            json!({"extensions": {"poolRef": "nope"}}),
            404,
            "KUBERNETES::POOL_NOT_FOUND",
        ),
        (
            json!({"extensions": {"poolRef": "p"}, "snapshotId": "s"}),
            422,
            "INVALID_REQUEST",
        ),
        (
            {
                let mut b = sdk_body();
                b["metadata"] = json!({"big": "x".repeat(5000)});
                b
            },
            413,
            "GENERAL::PAYLOAD_TOO_LARGE",
        ),
    ];
    for (body, status, code) in cases {
        let r = test::call_service(&app, post("/v1/sandboxes", body.clone()).to_request()).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v = body_json(r).await;
        assert_eq!(v["code"], code, "{body}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/v1/sandboxes")
            .insert_header((H, KEY))
            .insert_header(("content-type", "application/json"))
            .set_payload("{not json")
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let v = body_json(r).await;
    assert_eq!(v["code"], "INVALID_REQUEST");
    assert!(v["detail"].is_array());
    assert!(
        sandboxes(&e.s).await.is_empty(),
        "no workload for rejected creates"
    );
}

#[actix_rt::test]
async fn create_timeout_deletes_the_half_created_sandbox() {
    let mut c = cfg();
    c.sandbox_create_timeout_seconds = 1;
    let e = env(c).await;
    let app = app!(e);
    let r = test::call_service(&app, post("/v1/sandboxes", sdk_body()).to_request()).await;
    assert_eq!(r.status(), 504);
    assert_eq!(body_json(r).await["code"], "KUBERNETES::POD_READY_TIMEOUT");
    for _ in 0..100 {
        if sandboxes(&e.s).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the half-created BatchSandbox was not deleted");
}

#[actix_rt::test]
async fn secure_access_hands_out_a_per_sandbox_executor_token() {
    let e = env(cfg()).await;
    let _ctl = fake_controller(e.s.client(), "10.9.8.7");
    let app = app!(e);
    let mut body = sdk_body();
    body["secureAccess"] = json!(true);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let r = test::call_service(&app, post("/v1/sandboxes", body.clone()).to_request()).await;
        assert_eq!(r.status(), 202);
        let id = body_json(r).await["id"].as_str().unwrap().to_string();
        for query in ["", "?use_server_proxy=true"] {
            let uri = format!("/v1/sandboxes/{id}/endpoints/44772{query}");
            let r = test::call_service(&app, get(&uri).to_request()).await;
            assert_eq!(r.status(), 200);
            let ep = body_json(r).await;
            let token = ep["headers"]["X-EXECD-ACCESS-TOKEN"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(token.len(), 64, "{ep}");
            tokens.push(token);
        }
        let bs = sandboxes(&e.s)
            .await
            .into_iter()
            .find(|b| b.name_any() == id)
            .unwrap();
        let pod = bs.spec.template.as_ref().unwrap();
        let env = serde_json::to_value(&pod["spec"]["containers"][0]["env"]).unwrap();
        assert!(
            env.as_array()
                .unwrap()
                .contains(&json!({"name": "EXECD_ACCESS_TOKEN", "value": tokens.last().unwrap()})),
            "the executor gets the token: {env}"
        );
    }
    assert_eq!(tokens[0], tokens[1], "one token per sandbox");
    assert_ne!(tokens[0], tokens[2], "sandboxes do not share tokens");
    // Without secureAccess there is no token.
    let r = test::call_service(&app, post("/v1/sandboxes", sdk_body()).to_request()).await;
    let id = body_json(r).await["id"].as_str().unwrap().to_string();
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/endpoints/44772")).to_request(),
    )
    .await;
    assert!(body_json(r).await.get("headers").is_none());
    // A pool's pods exist before the sandbox, so they cannot carry its token.
    let r = test::call_service(
        &app,
        post(
            "/v1/sandboxes",
            json!({"extensions": {"poolRef": "p"}, "timeout": 60, "secureAccess": true}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(r).await["code"], "SANDBOX::INVALID_PARAMETER");
}

#[actix_rt::test]
async fn answer_pending_then_endpoint_404_until_address() {
    let mut c = cfg();
    c.answer_pending = true;
    let e = env(c).await;
    let app = app!(e);
    let r = test::call_service(&app, post("/v1/sandboxes", sdk_body()).to_request()).await;
    assert_eq!(r.status(), 202);
    let v = body_json(r).await;
    assert_eq!(v["status"]["state"], "Pending");
    let id = v["id"].as_str().unwrap().to_string();
    let st = e.state.clone();
    eventually("sandbox cached", || st.backend.find(&id).is_some()).await;
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/endpoints/44772")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        body_json(r).await["code"],
        "KUBERNETES::POD_IP_NOT_AVAILABLE"
    );
    let _ctl = fake_controller(e.s.client(), "10.9.8.7");
    let st = e.state.clone();
    eventually("address published", || {
        st.backend
            .find(&id)
            .is_some_and(|b| b.annotations().contains_key(keys::ANNOTATION_ENDPOINTS))
    })
    .await;
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/endpoints/44772")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(body_json(r).await["endpoint"], "10.9.8.7:44772");
}

#[actix_rt::test]
async fn pools_crud_and_pool_mode_create() {
    let mut c = cfg();
    c.answer_pending = true;
    let e = env(c).await;
    let app = app!(e);
    let pool = json!({"name": "warm", "template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
                      "capacitySpec": {"bufferMax": 2, "bufferMin": 1, "poolMax": 5, "poolMin": 0}});
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/v1/pools")
            .set_json(pool.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = test::call_service(&app, post("/v1/pools", pool.clone()).to_request()).await;
    assert_eq!(r.status(), 201);
    let v = body_json(r).await;
    assert_eq!(v["name"], "warm");
    assert_eq!(v["capacitySpec"]["poolMax"], 5);
    let r = test::call_service(&app, post("/v1/pools", pool.clone()).to_request()).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        body_json(r).await["code"],
        "KUBERNETES::POOL_ALREADY_EXISTS"
    );
    let mut bad = pool.clone();
    bad["name"] = json!("Bad_Name");
    let r = test::call_service(&app, post("/v1/pools", bad).to_request()).await;
    assert_eq!(r.status(), 422);
    let mut bad = pool.clone();
    bad["capacitySpec"]["bufferMin"] = json!(-1);
    let r = test::call_service(&app, post("/v1/pools", bad).to_request()).await;
    assert_eq!(r.status(), 422);
    let r = test::call_service(&app, post("/v1/pools", json!({"name": "x"})).to_request()).await;
    assert_eq!(r.status(), 422);

    let st = e.state.clone();
    eventually("pool cached", || st.backend.pool("warm").is_some()).await;
    let r = test::call_service(&app, get("/v1/pools").to_request()).await;
    assert_eq!(body_json(r).await["items"][0]["name"], "warm");
    let r = test::call_service(&app, get("/pools/warm").to_request()).await;
    assert_eq!(r.status(), 200);
    let r = test::call_service(&app, get("/v1/pools/nope").to_request()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(body_json(r).await["code"], "KUBERNETES::POOL_NOT_FOUND");
    let r = test::call_service(
        &app,
        test::TestRequest::put().uri("/v1/pools/warm").insert_header((H, KEY))
            .set_json(json!({"capacitySpec": {"bufferMax": 3, "bufferMin": 1, "poolMax": 9, "poolMin": 0}})).to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(body_json(r).await["capacitySpec"]["poolMax"], 9);

    // Pool-mode create: poolRef, no pod template, the entrypoint as a task.
    let r = test::call_service(&app, post("/v1/sandboxes", json!({"extensions": {"poolRef": "warm"}, "timeout": 120, "entrypoint": ["python", "app.py"]})).to_request()).await;
    assert_eq!(r.status(), 202);
    let v = body_json(r).await;
    assert_eq!(v["entrypoint"], json!(["python", "app.py"]));
    let id = v["id"].as_str().unwrap().to_string();
    let bs = sandboxes(&e.s)
        .await
        .into_iter()
        .find(|b| b.name_any() == id)
        .unwrap();
    assert_eq!(bs.spec.pool_ref.as_deref(), Some("warm"));
    assert!(bs.spec.template.is_none());
    assert_eq!(bs.spec.replicas, 1);
    assert!(bs.spec.expire_time.is_some());
    assert_eq!(
        bs.spec.task_template.unwrap()["spec"]["process"]["command"],
        json!(["python", "app.py"])
    );

    let del = |uri: &str| {
        test::TestRequest::delete()
            .uri(uri)
            .insert_header((H, KEY))
            .to_request()
    };
    let r = test::call_service(&app, del("/v1/pools/warm")).await;
    assert_eq!(r.status(), 204);
    let r = test::call_service(&app, del("/v1/pools/warm")).await;
    assert_eq!(r.status(), 404);
}

#[actix_rt::test]
async fn health_openapi_metrics_cors_and_exemptions() {
    let e = env(cfg()).await;
    let app = app!(e);
    let r = test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(body_json(r).await, json!({"status": "healthy"}));
    let r = test::call_service(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let doc = body_json(r).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/sandboxes"]["post"].is_object());
    assert!(
        doc["components"]["schemas"]["Sandbox"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("entrypoint"))
    );

    let ev = json!({"eventType": "sandbox.create", "createDurationMs": 1234, "success": true, "sandboxId": "x", "image": "python:3.11"});
    let r = test::call_service(&app, post("/v1/metrics/events", ev.clone()).to_request()).await;
    assert_eq!(r.status(), 204);
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/v1/metrics/events")
            .set_json(ev.clone())
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 401);
    let mut bad = ev.clone();
    bad["eventType"] = json!("other");
    let r = test::call_service(&app, post("/v1/metrics/events", bad).to_request()).await;
    assert_eq!(r.status(), 422);
    let r = test::call_service(&app, post("/metrics/events", ev).to_request()).await;
    assert_eq!(r.status(), 404, "metrics events live under /v1 only");

    // CORS: preflight without a key, headers on normal responses.
    let r = test::call_service(
        &app,
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v1/sandboxes")
            .insert_header(("Origin", "https://ui.example"))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header(("Access-Control-Request-Headers", "open-sandbox-api-key"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        "https://ui.example"
    );
    assert_eq!(
        r.headers().get("access-control-allow-credentials").unwrap(),
        "true"
    );
    let r = test::call_service(
        &app,
        get("/v1/sandboxes")
            .insert_header(("Origin", "https://ui.example"))
            .to_request(),
    )
    .await;
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        "https://ui.example"
    );

    // Proxy paths are exempt (unknown sandbox => 404, not 401); malformed ones are not.
    for p in [
        "/sandboxes/nope/proxy/8080/x",
        "/v1/sandboxes/nope/proxy/8080",
    ] {
        let r = test::call_service(&app, test::TestRequest::get().uri(p).to_request()).await;
        assert_eq!(r.status(), 404, "{p}");
        assert_eq!(body_json(r).await["code"], "KUBERNETES::SANDBOX_NOT_FOUND");
    }
    for p in [
        "/sandboxes/s1/proxy/8080x/",
        "/foo/sandboxes/id/proxy/8080",
        "/sandboxes/s1/proxy/80/../x",
    ] {
        let r = test::call_service(&app, test::TestRequest::get().uri(p).to_request()).await;
        assert_eq!(r.status(), 401, "{p}");
    }
}

#[actix_rt::test]
async fn rate_limit_per_key_answers_429_with_retry_after() {
    let mut c = cfg();
    c.rate_limit_per_second = 2;
    let e = env(c).await;
    let app = app!(e);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = test::call_service(&app, get("/v1/sandboxes").to_request()).await;
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(body_json(r).await["code"], "RATE_LIMITED");
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    let r = test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(r.status(), 200, "health is never limited");
}

#[actix_rt::test]
async fn diagnostics_return_json_descriptors() {
    let mut c = cfg();
    c.answer_pending = true;
    let e = env(c).await;
    let app = app!(e);
    let r = test::call_service(&app, post("/v1/sandboxes", sdk_body()).to_request()).await;
    let id = body_json(r).await["id"].as_str().unwrap().to_string();
    let st = e.state.clone();
    eventually("sandbox cached", || st.backend.find(&id).is_some()).await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(e.s.client(), "default");
    let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "ev1", "namespace": "default"},
        "involvedObject": {"kind": "BatchSandbox", "name": id, "namespace": "default"},
        "reason": "PodCreated", "message": "created pod x", "type": "Normal"
    }))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();

    let r = test::call_service(
        &app,
        get(&format!(
            "/v1/sandboxes/{id}/diagnostics/events?scope=runtime"
        ))
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let d = body_json(r).await;
    assert_eq!(d["kind"], "events");
    assert_eq!(d["scope"], "runtime");
    assert_eq!(d["delivery"], "inline");
    assert_eq!(d["truncated"], false);
    assert!(d["content"].as_str().unwrap().contains("PodCreated"), "{d}");
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/diagnostics/logs?scope=ALL")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let d = body_json(r).await;
    assert_eq!(d["kind"], "logs");
    assert_eq!(d["scope"], "all");
    assert!(!d["warnings"].as_array().unwrap().is_empty());
    let r = test::call_service(
        &app,
        get(&format!(
            "/v1/sandboxes/{id}/diagnostics/logs?scope=network"
        ))
        .to_request(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body_json(r).await["code"], "DIAGNOSTICS_SCOPE_UNSUPPORTED");
    let r = test::call_service(
        &app,
        get(&format!("/v1/sandboxes/{id}/diagnostics/events")).to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("deprecation").unwrap(), "true");
    let r = test::call_service(
        &app,
        get("/v1/sandboxes/nope/diagnostics/events?scope=runtime").to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
}

/// A tiny HTTP/1.1 backend: `/sse` streams two events with a pause the test controls,
/// anything else echoes the request head and body as JSON.
async fn backend(release: tokio::sync::oneshot::Receiver<()>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let release = Arc::new(tokio::sync::Mutex::new(Some(release)));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let release = release.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut tmp).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut tmp).await.unwrap();
                    buf.extend_from_slice(&tmp[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                if head.starts_with("GET /ws") {
                    assert!(
                        head.to_ascii_lowercase().contains("upgrade: websocket"),
                        "{head}"
                    );
                    sock.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test-accept\r\n\r\n").await.unwrap();
                    let mut rest = buf[head_end..].to_vec();
                    loop {
                        if !rest.is_empty() {
                            sock.write_all(&rest).await.unwrap();
                            rest.clear();
                        }
                        let n = sock.read(&mut tmp).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        rest.extend_from_slice(&tmp[..n]);
                    }
                } else if head.starts_with("GET /sse") {
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nserver: backend\r\n\r\n").await.unwrap();
                    let one = b"data: one\n\n";
                    sock.write_all(format!("{:x}\r\n", one.len()).as_bytes())
                        .await
                        .unwrap();
                    sock.write_all(one).await.unwrap();
                    sock.write_all(b"\r\n").await.unwrap();
                    sock.flush().await.unwrap();
                    if let Some(rx) = release.lock().await.take() {
                        let _ = rx.await;
                    }
                    let two = b"data: two\n\n";
                    sock.write_all(format!("{:x}\r\n", two.len()).as_bytes())
                        .await
                        .unwrap();
                    sock.write_all(two).await.unwrap();
                    sock.write_all(b"\r\n0\r\n\r\n").await.unwrap();
                } else {
                    if head.starts_with("GET /redirect") {
                        sock.write_all(b"HTTP/1.1 302 Found\r\nlocation: /login?next=1\r\ncontent-length: 0\r\n\r\n").await.unwrap();
                        return;
                    }
                    let out = json!({"head": head, "body": body}).to_string();
                    sock.write_all(format!("HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-backend: yes\r\n\r\n{out}", out.len()).as_bytes()).await.unwrap();
                }
            });
        }
    });
    port
}

#[actix_rt::test]
async fn proxy_forwards_to_the_pod_and_streams_sse() {
    let mut c = cfg();
    c.answer_pending = true;
    let e = env(c).await;
    let app = app!(e);
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    let port = backend(release_rx).await;
    let r = test::call_service(&app, post("/v1/sandboxes", sdk_body()).to_request()).await;
    let id = body_json(r).await["id"].as_str().unwrap().to_string();
    let api: Api<BatchSandbox> = Api::namespaced(e.s.client(), "default");
    api.patch(
        &id,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {keys::ANNOTATION_ENDPOINTS: "[\"127.0.0.1\"]"}}}),
        ),
    )
    .await
    .unwrap();
    let st = e.state.clone();
    eventually("address cached", || {
        st.backend
            .find(&id)
            .is_some_and(|b| b.annotations().contains_key(keys::ANNOTATION_ENDPOINTS))
    })
    .await;

    // Plain request: no key needed, credentials and hop-by-hop headers stripped, query raw.
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&format!("/sandboxes/{id}/proxy/{port}/api/run?q=a%20b&x=1"))
            .insert_header((H, KEY))
            .insert_header(("Cookie", "session=1"))
            .insert_header(("Authorization", "Bearer t"))
            .insert_header(("X-Custom", "kept"))
            .insert_header(("Connection", "x-drop"))
            .insert_header(("X-Drop", "gone"))
            .set_payload("hello body")
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("x-backend").unwrap(), "yes");
    let v = body_json(r).await;
    let head = v["head"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("post /api/run?q=a%20b&x=1 http/1.1"),
        "{head}"
    );
    assert!(head.contains("x-custom: kept"));
    assert!(head.contains(&format!("host: 127.0.0.1:{port}")));
    assert!(head.contains("x-forwarded-proto:"));
    for gone in ["open-sandbox-api-key", "cookie", "authorization", "x-drop"] {
        assert!(
            !head.contains(&format!("{gone}:")),
            "{gone} forwarded: {head}"
        );
    }
    assert_eq!(v["body"], "hello body");

    // SSE through the /v1 form: the first event arrives before the backend sends the second.
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/v1/sandboxes/{id}/proxy/{port}/sse"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    assert!(r.headers().get("server").is_none());
    let mut body = r.into_body();
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        futures::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx)),
    )
    .await
    .expect("first SSE event was buffered")
    .unwrap()
    .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    release_tx.send(()).unwrap();
    let rest = actix_web::body::to_bytes(body).await.unwrap_or_default();
    assert_eq!(&rest[..], b"data: two\n\n");

    // Root-relative redirects stay under the proxy prefix.
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/v1/sandboxes/{id}/proxy/{port}/redirect"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers().get("location").unwrap().to_str().unwrap(),
        format!("/v1/sandboxes/{id}/proxy/{port}/login?next=1")
    );

    // A sandbox without an address, and a closed port.
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/sandboxes/unknown/proxy/80/")
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 404);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/sandboxes/{id}/proxy/{closed}/x"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 502);
    assert_eq!(body_json(r).await["code"], "BACKEND_CONNECTION_FAILED");
}

#[actix_rt::test]
async fn proxy_relays_websocket_upgrades() {
    let mut c = cfg();
    c.answer_pending = true;
    let e = env(c).await;
    let (_release_tx, release_rx) = tokio::sync::oneshot::channel();
    let port = backend(release_rx).await;
    let st = e.state.clone();
    let server = actix_web::HttpServer::new(move || {
        let st = st.clone();
        App::new().configure(move |c| configure(c, st.clone()))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);

    let app = app!(e);
    let r = test::call_service(&app, post("/v1/sandboxes", sdk_body()).to_request()).await;
    let id = body_json(r).await["id"].as_str().unwrap().to_string();
    let api: Api<BatchSandbox> = Api::namespaced(e.s.client(), "default");
    api.patch(
        &id,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {keys::ANNOTATION_ENDPOINTS: "[\"127.0.0.1\"]"}}}),
        ),
    )
    .await
    .unwrap();
    let st = e.state.clone();
    eventually("address cached", || {
        st.backend
            .find(&id)
            .is_some_and(|b| b.annotations().contains_key(keys::ANNOTATION_ENDPOINTS))
    })
    .await;

    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /v1/sandboxes/{id}/proxy/{port}/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut tmp))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("sec-websocket-accept: test-accept"), "{head}");
    sock.write_all(b"\x81\x04ping").await.unwrap();
    let mut echoed = buf[head_end..].to_vec();
    while echoed.len() < 6 {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut tmp))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        echoed.extend_from_slice(&tmp[..n]);
    }
    assert_eq!(&echoed[..], b"\x81\x04ping");
    handle.stop(false).await;
}

#[actix_rt::test]
async fn auth_is_disabled_without_a_configured_key() {
    let mut c = cfg();
    c.api_key = None;
    c.answer_pending = true;
    let e = env(c).await;
    let app = app!(e);
    let r = test::call_service(
        &app,
        test::TestRequest::get().uri("/v1/sandboxes").to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    // A pool-mode sandbox reads back with image "unknown" and the default entrypoint.
    let pools: Api<opensandbox::crd::Pool> = Api::namespaced(e.s.client(), "default");
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(common::pool_json("p1", 0, 0, 0, 1)).unwrap(),
        )
        .await
        .unwrap();
    let st = e.state.clone();
    eventually("pool cached", || st.backend.pool("p1").is_some()).await;
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/sandboxes")
            .set_json(json!({"extensions": {"poolRef": "p1"}}))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let v = body_json(r).await;
    assert_no_nulls(&v);
    assert_eq!(v["entrypoint"], json!(["tail", "-f", "/dev/null"]));
    assert!(v.get("expiresAt").is_none());
    let id = v["id"].as_str().unwrap().to_string();
    let st = e.state.clone();
    eventually("sandbox cached", || st.backend.find(&id).is_some()).await;
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/sandboxes/{id}"))
            .to_request(),
    )
    .await;
    let v = body_json(r).await;
    assert_eq!(v["image"]["uri"], "unknown");
    assert_eq!(v["status"]["state"], "Pending");
}
