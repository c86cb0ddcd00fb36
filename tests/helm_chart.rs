//! The chart with real helm v4 against the embedded API server: install, upgrade and
//! uninstall, the stored objects against `helm template`, and the manager's requests against
//! the RBAC rules the chart grants it. Needs `hack/install-tools.sh` (run by `hack/test.sh`).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use opensandbox::actors::leader::LeaderConfig;
use opensandbox::crd::{BatchSandbox, Pool};
use opensandbox::standalone::apiserver::ApiServer;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    let local = repo().join(".cache/tools/bin").join(name);
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!("{name} not found: run hack/install-tools.sh (hack/test.sh does)")
        })
}

struct Helm {
    dir: tempfile::TempDir,
}

impl Helm {
    fn new(addr: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        ApiServer::write_kubeconfig(&dir.path().join("kubeconfig"), addr).unwrap();
        Self { dir }
    }

    async fn run(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(tool("helm"))
                .args(args)
                .arg("--kubeconfig")
                .arg(self.dir.path().join("kubeconfig"))
                .env("HOME", self.dir.path())
                .env("HELM_CACHE_HOME", self.dir.path().join("cache"))
                .env("HELM_CONFIG_HOME", self.dir.path().join("config"))
                .env("HELM_DATA_HOME", self.dir.path().join("data"))
                .current_dir(repo())
                .output(),
        )
        .await
        .expect("helm timed out")
        .expect("helm runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args).await;
        assert!(ok, "helm {args:?} failed:\n{text}");
        text
    }
}

/// Rendered manifests as JSON objects.
async fn template(args: &[&str]) -> Vec<Value> {
    let out = tokio::process::Command::new(tool("helm"))
        .arg("template")
        .args(args)
        .current_dir(repo())
        .output()
        .await
        .expect("helm template runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn ident(v: &Value, default_ns: &str) -> (String, String, String, String) {
    let ns = v["metadata"]["namespace"]
        .as_str()
        .unwrap_or(default_ns)
        .to_string();
    (
        v["apiVersion"].as_str().unwrap_or_default().to_string(),
        v["kind"].as_str().unwrap_or_default().to_string(),
        ns,
        v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn stored(s: &ApiServer, av: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let core = s.core();
    let res = core.registry.by_kind(av, kind)?;
    let ns = if res.namespaced { ns } else { "" };
    core.store
        .get(&res.key(), ns, name)
        .map(|o| o.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall() {
    let s = ApiServer::new();
    let ep = s.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let helm = Helm::new(ep.addr);
    let ns = "opensandbox-system";
    let chart = "helm/opensandbox-controller";
    let out = helm
        .ok(&[
            "install",
            "osb",
            chart,
            "--namespace",
            ns,
            "--create-namespace",
        ])
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let rendered = template(&[
        "osb",
        chart,
        "--namespace",
        ns,
        "--set",
        "server.config.server.apiKey=fixed",
    ])
    .await;
    assert!(rendered.len() > 8);
    for obj in &rendered {
        let (av, kind, ons, name) = ident(obj, ns);
        let got = stored(&s, &av, &kind, &ons, &name)
            .unwrap_or_else(|| panic!("{kind} {ons}/{name} was not installed"));
        assert_eq!(
            got["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{kind} {name}"
        );
        if kind == "Deployment" || kind == "ClusterRole" || kind == "Role" || kind == "Service" {
            // Spec-level content matches what helm template renders.
            let field = if kind.ends_with("Role") {
                "rules"
            } else {
                "spec"
            };
            let want = &obj[field];
            let have = &got[field];
            if kind == "Service" {
                assert_eq!(want["ports"], have["ports"], "{kind} {name}");
            } else if kind == "Deployment" {
                assert_eq!(want["replicas"], have["replicas"], "{kind} {name}");
                assert_eq!(
                    want["template"]["spec"]["containers"][0]["args"],
                    have["template"]["spec"]["containers"][0]["args"],
                    "{kind} {name}"
                );
            } else {
                assert_eq!(want, have, "{kind} {name}");
            }
        }
    }
    let crds: BTreeSet<String> = rendered
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(crds.len(), 3);
    // The CRDs are served right away.
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    assert!(pools.list(&Default::default()).await.is_ok());

    let out = helm
        .ok(&[
            "upgrade",
            "osb",
            chart,
            "--namespace",
            ns,
            "--set",
            "controllerManager.replicas=3",
        ])
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deploy = rendered.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let (av, kind, dns, dname) = ident(deploy, ns);
    let got = stored(&s, &av, &kind, &dns, &dname).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    assert!(
        s.core()
            .store
            .list(
                &s.core()
                    .registry
                    .by_kind("policy/v1", "PodDisruptionBudget")
                    .unwrap()
                    .key(),
                Some(ns)
            )
            .0
            .len()
            == 1,
        "a PodDisruptionBudget appears with 3 replicas"
    );
    let out = helm.ok(&["list", "--namespace", ns]).await;
    assert!(out.contains("osb") && out.contains("deployed"), "{out}");

    helm.ok(&["uninstall", "osb", "--namespace", ns]).await;
    for obj in &rendered {
        let (av, kind, ons, name) = ident(obj, ns);
        let left = stored(&s, &av, &kind, &ons, &name);
        if kind == "CustomResourceDefinition" {
            assert!(left.is_some(), "CRD {name} is kept on uninstall");
        } else {
            assert!(left.is_none(), "{kind} {ons}/{name} left after uninstall");
        }
    }
}

/// One RBAC rule.
#[derive(Debug)]
struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The rules granted to the manager's ServiceAccount by the rendered chart.
fn manager_rules(objs: &[Value]) -> Vec<Rule> {
    let sa = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|d| d["spec"]["template"]["spec"]["serviceAccountName"].as_str())
        .expect("deployment service account")
        .to_string();
    let mut rules = Vec::new();
    for b in objs
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let binds_sa = b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa.as_str());
        if !binds_sa {
            continue;
        }
        let role = b["roleRef"]["name"].as_str().unwrap_or_default();
        let kind = b["roleRef"]["kind"].as_str().unwrap_or_default();
        for r in objs
            .iter()
            .filter(|o| o["kind"] == kind && o["metadata"]["name"] == role)
        {
            for rule in r["rules"].as_array().into_iter().flatten() {
                rules.push(Rule {
                    groups: strings(&rule["apiGroups"]),
                    resources: strings(&rule["resources"]),
                    verbs: strings(&rule["verbs"]),
                });
            }
        }
    }
    rules
}

fn allowed(rules: &[Rule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.groups.iter().any(|g| g == group)
            && r.resources.iter().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

#[actix_rt::test]
async fn manager_requests_stay_within_the_chart_rbac() {
    let rendered = template(&[
        "osb",
        "helm/opensandbox-controller",
        "--namespace",
        "default",
    ])
    .await;
    let rules = manager_rules(&rendered);
    assert!(!rules.is_empty(), "the chart grants the manager no rules");
    for r in &rules {
        assert!(
            !r.verbs.iter().any(|v| v == "*") && !r.resources.iter().any(|v| v == "*"),
            "wildcard rule {r:?}"
        );
    }
    // Exercise everything the manager does: election, pools, pooled and template sandboxes,
    // deletion and expiry, events.
    let s = api_server().await;
    let _k = kubelet(&s);
    let lease = LeaderConfig {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(150),
        advertise_address: None,
        ..LeaderConfig::new("opensandbox-controller-leader", "default", "a")
    };
    let m = Manager::start(&s, "a", Some(lease)).await;
    let pools: Api<Pool> = Api::namespaced(s.client(), "default");
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(pool_json("p", 2, 2, 0, 6)).unwrap(),
        )
        .await
        .unwrap();
    eventually("pool warm", Duration::from_secs(20), || async {
        pools
            .get("p")
            .await
            .unwrap()
            .status
            .is_some_and(|st| st.available == 2)
    })
    .await;
    let bs: Api<BatchSandbox> = Api::namespaced(s.client(), "default");
    let pooled = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "pooled"}, "spec": {"replicas": 1, "poolRef": "p",
        "expireTime": (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()}});
    bs.create(
        &PostParams::default(),
        &serde_json::from_value(pooled).unwrap(),
    )
    .await
    .unwrap();
    let templ = json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "BatchSandbox",
        "metadata": {"name": "templ"}, "spec": {"replicas": 2,
        "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}});
    bs.create(
        &PostParams::default(),
        &serde_json::from_value(templ).unwrap(),
    )
    .await
    .unwrap();
    eventually(
        "template sandbox ready",
        Duration::from_secs(20),
        || async {
            bs.get("templ")
                .await
                .unwrap()
                .status
                .is_some_and(|st| st.ready == 2)
        },
    )
    .await;
    let down = json!({"spec": {"replicas": 1}});
    bs.patch("templ", &PatchParams::default(), &Patch::Merge(&down))
        .await
        .unwrap();
    eventually(
        "pooled sandbox expired",
        Duration::from_secs(20),
        || async { bs.get_opt("pooled").await.unwrap().is_none() },
    )
    .await;
    bs.delete("templ", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(m);
    let mine: Vec<_> = s
        .requests()
        .entries()
        .into_iter()
        .filter(|e| e.user_agent.starts_with(MANAGER_AGENT_PREFIX))
        .collect();
    assert!(mine.len() > 10, "the scenario made manager requests");
    let mut denied = BTreeSet::new();
    for e in &mine {
        assert_ne!(e.code, 403);
        if !allowed(&rules, &e.group, &e.resource, &e.verb) {
            denied.insert(format!("{} {}/{}", e.verb, e.group, e.resource));
        }
    }
    assert!(
        denied.is_empty(),
        "requests the chart's RBAC does not allow: {denied:?}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_accepts_the_rendered_command_line() {
    let (health, metrics, api) = (free_port(), free_port(), free_port());
    let rendered = template(&[
        "osb",
        "helm/opensandbox-controller",
        "--namespace",
        "default",
        "--set",
        &format!("healthProbePort={health}"),
        "--set",
        &format!("metrics.port={metrics}"),
        "--set",
        &format!("server.config.server.port={api}"),
        "--set",
        "controllerManager.snapshot.registry=registry.example.com/snapshots",
    ])
    .await;
    let deploy = rendered.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = strings(&container["args"]);
    assert_eq!(args[0], "manager");
    let s = ApiServer::new();
    let crds: Vec<Value> = opensandbox::crd::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    s.install_crds(&crds).await.unwrap();
    let ep = s.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    ApiServer::write_kubeconfig(&dir.path().join("kubeconfig"), ep.addr).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_opensandbox"));
    let mut child = tokio::process::Command::new(bin)
        .args(&args)
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env("POD_NAMESPACE", "default")
        .env("POD_NAME", "manager-0")
        .env("POD_IP", "127.0.0.1")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = |port: u16, path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if c.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf).await;
        buf.starts_with(b"HTTP/1.1 200")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the manager exited with {status} on the chart's arguments {args:?}");
        }
        if ready(health, "/readyz").await
            && ready(metrics, "/metrics").await
            && ready(api, "/health").await
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the manager never became ready with {args:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
}
