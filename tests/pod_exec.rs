//! `pods/exec` on the embedded API server: WebSocket framing, statuses and errors, through
//! kube-rs in-process and over loopback HTTP, with the simulated kubelet running commands.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use opensandbox::crd::keys;
use opensandbox::standalone::apiserver::ApiServer;
use opensandbox::standalone::kubelet_sim::SimKubelet;
use serde_json::json;
use tokio::io::AsyncReadExt;

const T: Duration = Duration::from_secs(20);

async fn running_pod(s: &ApiServer, name: &str) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(s.client(), "default");
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {keys::LABEL_MANAGED: keys::LABEL_MANAGED_VALUE}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "busybox"}]}});
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    eventually("pod running", T, || async {
        pods.get(name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase)
            .as_deref()
            == Some("Running")
    })
    .await;
    pods
}

fn container_id(pod: &Pod, container: &str) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default()
}

struct Outcome {
    stdout: String,
    stderr: String,
    status: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
}

async fn exec(pods: &Api<Pod>, name: &str, container: &str, command: &[&str]) -> Outcome {
    let ap = AttachParams::default()
        .container(container)
        .stdout(true)
        .stderr(true);
    let mut proc = pods.exec(name, command.to_vec(), &ap).await.unwrap();
    let mut out = String::new();
    let mut err = String::new();
    let mut so = proc.stdout().unwrap();
    let mut se = proc.stderr().unwrap();
    let status = proc.take_status().unwrap();
    let (_, _, status) = tokio::join!(
        so.read_to_string(&mut out),
        se.read_to_string(&mut err),
        status
    );
    proc.join().await.unwrap();
    Outcome {
        stdout: out,
        stderr: err,
        status: status.expect("a status on the error channel"),
    }
}

async fn check_exec_roundtrip(s: &ApiServer, k: &SimKubelet, pods: Api<Pod>, name: &str) {
    let before = pods.get(name).await.unwrap();
    let o = exec(&pods, name, "main", &["echo", "hello", "world"]).await;
    assert_eq!(o.stdout, "hello world\n");
    assert_eq!(o.status.status.as_deref(), Some("Success"));
    let after = pods.get(name).await.unwrap();
    assert_ne!(
        container_id(&before, "main"),
        container_id(&after, "main"),
        "the container restarted"
    );
    assert_eq!(
        container_id(&before, "side"),
        container_id(&after, "side"),
        "only that container"
    );
    eventually("ready again", T, || async {
        let p = pods.get(name).await.unwrap();
        p.status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await;

    k.fail_exec("default", name, true);
    let o = exec(&pods, name, "main", &["kill", "1"]).await;
    assert_eq!(o.stderr, "simulated exec failure\n");
    assert_eq!(o.status.status.as_deref(), Some("Failure"));
    assert_eq!(o.status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &o.status.details.unwrap().causes.unwrap()[0];
    assert_eq!(cause.reason.as_deref(), Some("ExitCode"));
    assert_eq!(cause.message.as_deref(), Some("1"));
    k.fail_exec("default", name, false);
    assert!(
        s.requests()
            .entries()
            .iter()
            .any(|e| e.resource == "pods/exec" && e.verb == "create" && e.code == 101)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_in_process_streams_output_and_exit_status() {
    let s = api_server().await;
    let k = kubelet(&s);
    let pods = running_pod(&s, "p1").await;
    check_exec_roundtrip(&s, &k, pods, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_loopback_http() {
    let s = api_server().await;
    let k = kubelet(&s);
    running_pod(&s, "p2").await;
    let ep = s.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    ApiServer::write_kubeconfig(&path, ep.addr).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    check_exec_roundtrip(&s, &k, Api::namespaced(client, "default"), "p2").await;
    ep.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_errors_are_statuses() {
    let s = api_server().await;
    let k = kubelet(&s);
    let pods = running_pod(&s, "p3").await;
    let err = |r: Result<kube::api::AttachedProcess, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        Err(e) => panic!("expected a Status, got {e}"),
        Ok(_) => panic!("expected an error"),
    };
    let ap = || AttachParams::default().stdout(true).stderr(true);
    let (code, msg) = err(pods.exec("p3", ["true"], &ap().container("nope")).await);
    assert_eq!(code, 400);
    assert!(
        msg.contains("container nope is not valid for pod p3"),
        "{msg}"
    );
    let (code, msg) = err(pods.exec("p3", ["true"], &ap()).await);
    assert_eq!(code, 400, "two containers: one must be named");
    assert!(msg.contains("choose one of: [main side]"), "{msg}");
    let (code, _) = err(pods
        .exec("missing", ["true"], &ap().container("main"))
        .await);
    assert_eq!(code, 404);
    let none: Vec<String> = Vec::new();
    let (code, msg) = err(pods.exec("p3", none, &ap().container("main")).await);
    assert_eq!(code, 400);
    assert!(msg.contains("at least one command"), "{msg}");

    // Without the upgrade the request is refused.
    let req = http::Request::get(format!(
        "/api/v1/namespaces/default/pods/p3/exec?{}",
        opensandbox::standalone::apiserver::exec::exec_query("main", &["true"])
    ))
    .body(bytes::Bytes::new())
    .unwrap();
    let resp = s.request(req).await;
    assert_eq!(
        resp.status().as_u16(),
        400,
        "exec is only served on connections that can upgrade"
    );

    // No runtime behind the server: 503.
    s.set_pod_executor(None);
    let (code, msg) = err(pods.exec("p3", ["true"], &ap().container("main")).await);
    assert_eq!(code, 503);
    assert!(msg.contains("no container runtime"), "{msg}");
    drop(k);
}
