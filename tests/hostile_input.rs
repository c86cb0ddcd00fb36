//! Hostile input against the SDK lifecycle API, its server proxy and the embedded Kubernetes
//! API server: wrong keys, oversized bodies, slow clients, proxy targets outside the
//! sandbox, anonymous access and adversarial custom resources. Each is refused with a clear
//! error and nothing grows without bound. Every scenario prints one `FIGURES` line (the
//! README's Reliability table is filled from them).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::web;
use common::{api_server, free_addr, http_json};
use kube::api::{Api, PostParams};
use opensandbox::cache::{Cache, InformerConfig};
use opensandbox::crd::{BatchSandbox, keys};
use opensandbox::http::lifecycle::{LifecycleState, ServerConfig, lifecycle_server};
use opensandbox::standalone::apiserver::{ApiServer, ApiServerConfig, BearerToken};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "hostile-test-key-0123456789";
const H: &str = "OPEN-SANDBOX-API-KEY";

/// Requests sent, error answers seen (the expected refusals) and invariant violations.
#[derive(Default)]
struct Figures {
    requests: u64,
    errors_seen: u64,
    violations: Vec<String>,
}

impl Figures {
    /// Records one answer; `ok` says whether it is the one the scenario demands.
    fn record(&mut self, status: u16, ok: bool, what: &str) {
        self.requests += 1;
        if status >= 400 || status == 0 {
            self.errors_seen += 1;
        }
        if !ok || status >= 500 && status != 502 && status != 504 {
            self.violations.push(format!("{what}: status {status}"));
        }
    }

    fn finish(self, scenario: &str) {
        println!(
            "FIGURES scenario={scenario} requests={} errors_seen={} violations={}",
            self.requests,
            self.errors_seen,
            self.violations.len()
        );
        assert!(
            self.violations.is_empty(),
            "{scenario}: {:#?}",
            self.violations
        );
    }
}

struct Sdk {
    api: ApiServer,
    addr: SocketAddr,
    _server: actix_web::dev::ServerHandle,
    _informers: Vec<tokio::task::JoinHandle<()>>,
}

/// The lifecycle API served over real TCP (slow clients need a real socket).
async fn sdk(cfg: ServerConfig) -> Sdk {
    let api = api_server().await;
    let cache = Cache::new();
    let informers = opensandbox::cache::informer::start(
        api.client(),
        cache.clone(),
        &InformerConfig::default(),
    );
    cache.wait_synced().await;
    let state = web::Data::new(LifecycleState::new(api.client(), cache, cfg));
    let addr = free_addr();
    let server = lifecycle_server(addr, state, 1).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Sdk {
        api,
        addr,
        _server: handle,
        _informers: informers,
    }
}

fn cfg() -> ServerConfig {
    ServerConfig {
        api_key: Some(KEY.into()),
        max_body_bytes: 64 * 1024,
        body_read_timeout_seconds: 1,
        ..ServerConfig::default()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[actix_rt::test]
async fn wrong_or_missing_api_keys_get_401_and_compare_in_constant_time() {
    let env = sdk(cfg()).await;
    let mut f = Figures::default();
    let cases: [(Option<&str>, &str); 6] = [
        (None, "MISSING_API_KEY"),
        (Some(""), "INVALID_API_KEY"),
        (Some("hostile-test-key-012345678"), "INVALID_API_KEY"),
        (Some("hostile-test-key-0123456789x"), "INVALID_API_KEY"),
        (Some("HOSTILE-TEST-KEY-0123456789"), "INVALID_API_KEY"),
        (Some("' OR 1=1 --"), "INVALID_API_KEY"),
    ];
    for path in [
        "/v1/sandboxes",
        "/sandboxes",
        "/v1/pools",
        "/v1/nope",
        "/v1/sandboxes/x/proxy/80x",
    ] {
        for (key, code) in cases {
            let headers: Vec<(&str, &str)> = key.map(|k| vec![(H, k)]).unwrap_or_default();
            let (status, _, body) = http_json(env.addr, "GET", path, &headers, None).await;
            f.record(
                status,
                status == 401 && body["code"] == code && body["message"].is_string(),
                &format!("GET {path} with {key:?}"),
            );
        }
    }
    let (status, _, _) = http_json(env.addr, "GET", "/v1/sandboxes", &[(H, KEY)], None).await;
    f.record(status, status == 200, "the right key");

    // Coarse timing check: a key wrong in its first byte and one wrong in its last byte
    // take the same time (a short-circuiting compare would answer the first faster). The
    // bound is loose on purpose: loopback HTTP noise dwarfs a byte compare either way.
    let first = format!("X{}", &KEY[1..]);
    let last = format!("{}X", &KEY[..KEY.len() - 1]);
    let (mut t_first, mut t_last) = (Vec::new(), Vec::new());
    for _ in 0..150 {
        for (key, times) in [(&first, &mut t_first), (&last, &mut t_last)] {
            let started = Instant::now();
            let (status, _, _) =
                http_json(env.addr, "GET", "/v1/sandboxes", &[(H, key)], None).await;
            times.push(started.elapsed());
            f.record(status, status == 401, "timing probe");
        }
    }
    let (a, b) = (median(t_first), median(t_last));
    let ratio = a.as_secs_f64() / b.as_secs_f64();
    println!("key compare medians: wrong first byte {a:?}, wrong last byte {b:?}");
    if !(0.33..3.0).contains(&ratio) {
        f.violations.push(format!("timing ratio {ratio:.2}"));
    }
    f.finish("api-keys");
}

#[actix_rt::test]
async fn oversized_bodies_get_413() {
    let env = sdk(cfg()).await;
    let mut f = Figures::default();
    let big = "x".repeat(200 * 1024);
    for path in [
        "/v1/sandboxes",
        "/v1/pools",
        "/sandboxes/abc/renew-expiration",
    ] {
        let body = json!({"image": {"uri": big}, "metadata": {"k": big}});
        let (status, _, body) = http_json(env.addr, "POST", path, &[(H, KEY)], Some(body)).await;
        f.record(
            status,
            status == 413 && body["code"] == "GENERAL::PAYLOAD_TOO_LARGE",
            &format!("POST {path} 400 KiB"),
        );
    }
    // Chunked, so no Content-Length announces the size.
    let status = raw_status(
        env.addr,
        &format!(
            "POST /v1/sandboxes HTTP/1.1\r\nhost: x\r\n{H}: {KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            big.len(),
            big
        ),
    )
    .await;
    f.record(status, status == 413, "chunked 200 KiB");

    // The embedded API server: 3 MiB at most.
    let kube = env.api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let huge = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "huge"}, "data": {"k": "y".repeat(4 << 20)}});
    let (status, _, body) = http_json(
        kube.addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[],
        Some(huge),
    )
    .await;
    f.record(
        status,
        status == 413 && body["kind"] == "Status" && body["reason"] == "RequestEntityTooLarge",
        "4 MiB ConfigMap",
    );
    kube.task.abort();
    f.finish("oversized-bodies");
}

/// Sends `raw` and returns the status code of the answer (0 when the connection closed
/// without one).
async fn raw_status(addr: SocketAddr, raw: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Opens a connection, trickles `prefix` byte by byte, then sends nothing more; returns how
/// long the server took to close it (or `None` past `limit`) and what it answered.
async fn trickle(
    addr: SocketAddr,
    prefix: &[u8],
    every: Duration,
    limit: Duration,
) -> (Option<Duration>, u16) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let mut sent = 0;
    loop {
        if started.elapsed() > limit {
            return (None, 0);
        }
        if sent < prefix.len() {
            if s.write_all(&prefix[sent..=sent]).await.is_err() {
                break;
            }
            sent += 1;
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let head = String::from_utf8_lossy(&answer);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (Some(started.elapsed()), status)
}

#[actix_rt::test]
async fn slow_clients_are_cut_off() {
    let env = sdk(cfg()).await;
    let mut f = Figures::default();
    // Headers sent one byte every 300 ms, forever: the 10 s header timeout ends it.
    let endless_headers = format!(
        "GET /v1/sandboxes HTTP/1.1\r\n{H}: {KEY}\r\nx-pad: {}",
        "a".repeat(400)
    );
    let limit = Duration::from_secs(25);
    let (closed, status) = trickle(
        env.addr,
        endless_headers.as_bytes(),
        Duration::from_millis(300),
        limit,
    )
    .await;
    f.record(
        status,
        closed.is_some_and(|d| d < Duration::from_secs(15)),
        &format!("SDK API, endless headers: closed after {closed:?}"),
    );
    // A body announced and never sent: 408 once the 1 s body timeout passes.
    let stalled = format!(
        "POST /v1/sandboxes HTTP/1.1\r\nhost: x\r\n{H}: {KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"image\""
    );
    let (closed, status) = trickle(
        env.addr,
        stalled.as_bytes(),
        Duration::from_millis(1),
        limit,
    )
    .await;
    f.record(
        status,
        status == 408 && closed.is_some_and(|d| d < Duration::from_secs(6)),
        &format!("SDK API, stalled body: {status} after {closed:?}"),
    );

    // The embedded API server, with short limits.
    let api = ApiServer::with_config(ApiServerConfig {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        ..ApiServerConfig::default()
    });
    let kube = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (closed, status) = trickle(
        kube.addr,
        b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(200),
        limit,
    )
    .await;
    f.record(
        status,
        closed.is_some_and(|d| d < Duration::from_secs(5)),
        &format!("API server, endless headers: closed after {closed:?}"),
    );
    let (closed, status) = trickle(
        kube.addr,
        b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\n{\"a\"",
        Duration::from_millis(1),
        limit,
    )
    .await;
    f.record(
        status,
        status == 408 && closed.is_some_and(|d| d < Duration::from_secs(6)),
        &format!("API server, stalled body: {status} after {closed:?}"),
    );
    kube.task.abort();
    f.finish("slow-clients");
}

/// A BatchSandbox as the API creates it, already given `ip` as its address.
async fn sandbox_at(api: &ApiServer, id: &str, ip: &str) {
    let bs: BatchSandbox = serde_json::from_value(json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": id, "namespace": "default",
                     "labels": {"opensandbox.io/id": id},
                     "annotations": {keys::ANNOTATION_ENDPOINTS: format!("[\"{ip}\"]")}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    Api::<BatchSandbox>::namespaced(api.client(), "default")
        .create(&PostParams::default(), &bs)
        .await
        .unwrap();
}

/// A backend answering every request with its request line and Host header.
async fn echo_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let host = head
                    .lines()
                    .find_map(|l| l.strip_prefix("host: "))
                    .unwrap_or_default()
                    .to_string();
                let body = json!({"line": line, "host": host}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[actix_rt::test]
async fn the_proxy_reaches_only_the_sandboxes_own_address() {
    let env = sdk(cfg()).await;
    let (backend, _task) = echo_backend().await;
    let port = backend.port();
    sandbox_at(&env.api, "mine", "127.0.0.1").await;
    sandbox_at(&env.api, "other", "127.0.0.2").await;
    sandbox_at(&env.api, "metadata", "169.254.169.254").await;
    sandbox_at(&env.api, "nowhere", "0.0.0.0").await;
    common::eventually("sandboxes cached", Duration::from_secs(5), || async {
        http_json(env.addr, "GET", "/v1/sandboxes/nowhere", &[(H, KEY)], None)
            .await
            .0
            == 200
    })
    .await;
    let mut f = Figures::default();

    // Its own port: reached, whatever the tail or Host header claims.
    for tail in [
        "x",
        "http://evil.example/x",
        "@evil.example/x",
        "%2F%2Fevil.example/x",
    ] {
        let (status, _, body) = http_json(
            env.addr,
            "GET",
            &format!("/sandboxes/mine/proxy/{port}/{tail}"),
            &[
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "host=evil.example"),
            ],
            None,
        )
        .await;
        f.record(
            status,
            status == 200 && body["host"] == format!("127.0.0.1:{port}"),
            &format!("own sandbox, tail {tail}: {body}"),
        );
    }
    // Another sandbox's proxy path goes to that sandbox's address, never to this backend.
    let (status, _, body) = http_json(
        env.addr,
        "GET",
        &format!("/sandboxes/other/proxy/{port}/x"),
        &[],
        None,
    )
    .await;
    f.record(
        status,
        status == 502 && body["code"] == "BACKEND_CONNECTION_FAILED",
        &format!("other sandbox's address: {body}"),
    );
    for (id, want) in [("metadata", 403), ("nowhere", 403), ("missing", 404)] {
        let (status, _, body) = http_json(
            env.addr,
            "GET",
            &format!("/sandboxes/{id}/proxy/80/x"),
            &[],
            None,
        )
        .await;
        f.record(
            status,
            status == want && body["code"].is_string(),
            &format!("sandbox {id}: {body}"),
        );
    }
    for path in [
        "/sandboxes/..%2Fmine/proxy/80/".to_string(),
        format!("/sandboxes/mine/proxy/{port}/..%2F..%2Fetc"),
        "/sandboxes/mine/proxy/0/".to_string(),
        "/sandboxes/mine/proxy/70000/".to_string(),
        format!("/sandboxes/mine/proxy/{port}x/"),
        "/sandboxes/mine/proxy/-1/".to_string(),
    ] {
        let (status, _, body) = http_json(env.addr, "GET", &path, &[], None).await;
        f.record(
            status,
            (400..500).contains(&status) && body["code"].is_string(),
            &format!("{path}: {status} {body}"),
        );
    }
    // An absolute-form request target names a host: it is routed by path only.
    let status = raw_status(
        env.addr,
        &format!(
            "GET http://169.254.169.254:{port}/latest HTTP/1.1\r\nhost: 169.254.169.254\r\n\r\n"
        ),
    )
    .await;
    f.record(
        status,
        status == 401 || status == 404,
        "absolute-form target",
    );
    f.finish("proxy-targets");
}

#[tokio::test]
async fn standalone_embedded_api_server_refuses_anonymous_requests() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let opts = opensandbox::standalone::run::StandaloneOptions {
        state_dir: dir.path().to_path_buf(),
        kube_listen: "127.0.0.1:0".parse().unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        api_key: None,
        default_pool: false,
        config: None,
        metrics_listen: None,
    };
    let sa = opensandbox::standalone::run::start(&opts).await.unwrap();
    let mode = std::fs::metadata(&sa.kubeconfig)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the kubeconfig holds a credential");
    let text = std::fs::read_to_string(&sa.kubeconfig).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 64);
    let mut f = Figures::default();
    let bearer = format!("Bearer {token}");
    let wrong = format!("Bearer {}", BearerToken::generate().as_str());
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![], 401),
        (vec![("authorization", "Bearer opensandbox-local")], 401),
        (vec![("authorization", wrong.as_str())], 401),
        (vec![("authorization", token.as_str())], 401),
        (vec![("authorization", "Basic YWRtaW46YWRtaW4=")], 401),
        (vec![("authorization", bearer.as_str())], 200),
    ];
    for path in [
        "/api/v1/namespaces/default/pods",
        "/apis",
        "/version",
        "/api",
    ] {
        for (headers, want) in &cases {
            let (status, _, body) = http_json(sa.kube_addr, "GET", path, headers, None).await;
            let ok = status == *want
                && (status != 401 || body["kind"] == "Status" && body["reason"] == "Unauthorized");
            f.record(status, ok, &format!("GET {path} with {headers:?}"));
        }
    }
    // The token as the server URL's path prefix (kubectl sends no bearer token over HTTP).
    let wrong_prefix = format!("/t/{}/api", BearerToken::generate().as_str());
    let short_prefix = format!("/t/{}/api", &token[..63]);
    let right_prefix = format!("/t/{token}/api/v1/namespaces/default/pods?limit=1");
    for (path, want) in [
        ("/t//api", 401),
        ("/t/opensandbox-local/api", 401),
        (wrong_prefix.as_str(), 401),
        (short_prefix.as_str(), 401),
        (right_prefix.as_str(), 200),
    ] {
        let (status, _, body) = http_json(sa.kube_addr, "GET", path, &[], None).await;
        let ok = status == want && (status != 401 || body["reason"] == "Unauthorized");
        f.record(status, ok, &format!("GET {path}"));
    }
    // Writes too.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (status, _, _) = http_json(
        sa.kube_addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[],
        Some(cm),
    )
    .await;
    f.record(status, status == 401, "anonymous create");
    // A client built from the kubeconfig (as kubectl and helm are) gets in.
    let kc = kube::config::Kubeconfig::read_from(&sa.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
    let listed = pods.list(&Default::default()).await;
    f.record(
        if listed.is_ok() { 200 } else { 401 },
        listed.is_ok(),
        &format!("kubeconfig client: {:?}", listed.as_ref().err()),
    );
    f.finish("apiserver-auth");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn causes(body: &Value) -> Vec<String> {
    body["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_rt::test]
async fn adversarial_custom_resources_are_refused_with_field_paths() {
    let env = sdk(cfg()).await;
    let _manager = common::Manager::start(&env.api, "hostile", None).await;
    let token = BearerToken::generate();
    let kube = env
        .api
        .serve_authenticated("127.0.0.1:0".parse().unwrap(), token.clone())
        .await
        .unwrap();
    let auth = format!("Bearer {}", token.as_str());
    let before = rss_kib();
    let mut f = Figures::default();
    let bs = |name: &str, replicas: i64, annotations: Value| {
        json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
               "metadata": {"name": name, "annotations": annotations},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    };
    let huge = "a".repeat(1 << 20);
    let pool = |name: &str, bmin: i64, bmax: i64, pmin: i64, pmax: i64| {
        let mut p = common::pool_json(name, 0, 0, 0, 0);
        p["spec"]["capacitySpec"] =
            json!({"bufferMin": bmin, "bufferMax": bmax, "poolMin": pmin, "poolMax": pmax});
        p
    };
    let bs_path = "/apis/sandbox.opensandbox.io/v1alpha1/namespaces/default/batchsandboxes";
    let pool_path = "/apis/sandbox.opensandbox.io/v1alpha1/namespaces/default/pools";
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "replicas 10^9",
            bs_path,
            bs("r1", 1_000_000_000, json!({})),
            "spec.replicas",
        ),
        (
            "replicas 2^31",
            bs_path,
            bs("r2", 1 << 31, json!({})),
            "spec.replicas",
        ),
        (
            "replicas -1",
            bs_path,
            bs("r3", -1, json!({})),
            "spec.replicas",
        ),
        (
            "1 MiB annotation",
            bs_path,
            bs("a1", 1, json!({"k": huge})),
            "metadata.annotations",
        ),
        (
            "bufferMin > bufferMax",
            pool_path,
            pool("p1", 5, 2, 0, 10),
            "spec.capacitySpec.bufferMin",
        ),
        (
            "poolMin > poolMax",
            pool_path,
            pool("p2", 0, 2, 9, 3),
            "spec.capacitySpec.poolMin",
        ),
        (
            "poolMax 10^9",
            pool_path,
            pool("p3", 0, 2, 0, 1_000_000_000),
            "spec.capacitySpec.poolMax",
        ),
        (
            "bufferMin 10^9",
            pool_path,
            pool("p4", 1_000_000_000, 1_000_000_000, 0, 1_000_000_000),
            "spec.capacitySpec.bufferMin",
        ),
    ];
    for (what, path, body, field) in cases {
        let (status, _, body) = http_json(
            kube.addr,
            "POST",
            path,
            &[("authorization", &auth)],
            Some(body),
        )
        .await;
        let fields = causes(&body);
        f.record(
            status,
            status == 422 && body["reason"] == "Invalid" && fields.iter().any(|c| c == field),
            &format!("{what}: {status} {fields:?} {}", body["message"]),
        );
    }
    // A name of 10,000 characters, and JSON nested past any parser's patience.
    let mut long = bs("n", 1, json!({}));
    long["metadata"]["name"] = json!("n".repeat(10_000));
    let (status, _, _) = http_json(
        kube.addr,
        "POST",
        bs_path,
        &[("authorization", &auth)],
        Some(long),
    )
    .await;
    f.record(status, status == 422, "10,000-character name");
    let deep = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"d\"}},\"data\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let raw = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{deep}",
        deep.len()
    );
    let status = raw_status(kube.addr, &raw).await;
    f.record(status, status == 400 || status == 422, "100,000-deep JSON");

    // The SDK API's own pool route checks the same bounds.
    for (what, cap) in [
        (
            "bufferMin > bufferMax",
            json!({"bufferMin": 3, "bufferMax": 1, "poolMin": 0, "poolMax": 5}),
        ),
        (
            "poolMax 10^9",
            json!({"bufferMin": 0, "bufferMax": 1, "poolMin": 0, "poolMax": 1_000_000_000}),
        ),
    ] {
        let body = json!({"name": "sdkpool", "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}, "capacitySpec": cap});
        let (status, _, body) =
            http_json(env.addr, "POST", "/v1/pools", &[(H, KEY)], Some(body)).await;
        f.record(
            status,
            status == 422
                && body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("capacitySpec")),
            &format!("SDK pool {what}: {status} {body}"),
        );
    }
    // Names no pool can have (schemathesis found a 500 here: a newline broke the URI).
    for name in ["6%0A", "a%20b", "UPPER", "..", "x%2Fy"] {
        let (status, _, body) = http_json(
            env.addr,
            "DELETE",
            &format!("/v1/pools/{name}"),
            &[(H, KEY)],
            None,
        )
        .await;
        f.record(
            status,
            status == 404 && body["code"] == "KUBERNETES::POOL_NOT_FOUND",
            &format!("DELETE pool {name}: {status} {body}"),
        );
    }
    // Nothing was stored, and memory stayed put.
    let stored: Vec<BatchSandbox> = Api::<BatchSandbox>::namespaced(env.api.client(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    f.record(200, stored.is_empty(), "no BatchSandbox stored");
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    println!("RSS growth after the adversarial requests: {grown_mib} MiB");
    if grown_mib > 256 {
        f.violations.push(format!("RSS grew by {grown_mib} MiB"));
    }
    kube.task.abort();
    f.finish("adversarial-crs");
}
