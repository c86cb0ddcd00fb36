"""Tests of the Helm chart helm/opensandbox-controller.

`helm lint --strict`, `helm template` over a matrix of values with checks of the rendered
objects, schema validation of every object with kubernetes-validate (Kubernetes 1.33, strict),
and `helm package`. helm is taken from PATH (hack/test.sh puts .cache/tools/bin first) or from
<repo>/.cache/tools/bin.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "opensandbox-controller"
K8S_VERSION = "1.33.0"
RELEASE = "osb"
NAMESPACE = "opensandbox-system"
FULLNAME = f"{RELEASE}-opensandbox-controller"
MANAGER = f"{FULLNAME}-controller-manager"
SERVER = f"{FULLNAME}-server"
API_KEY = "s3cr3t-api-key-for-tests"


def helm_bin() -> str:
    found = shutil.which("helm")
    if found:
        return found
    fallback = ROOT / ".cache" / "tools" / "bin" / "helm"
    if fallback.exists():
        return str(fallback)
    pytest.skip("helm not found: run hack/install-tools.sh")


def run_helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=120)


def chart_meta() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


# Named value sets; each is rendered once (cached) and checked by the tests below.
CASES: dict[str, dict] = {
    "defaults": {},
    "server-disabled": {"server": {"enabled": False}},
    "nodeport": {"server": {"service": {"type": "NodePort", "nodePort": 30080}}},
    "ingress-tls": {
        "server": {
            "config": {"server": {"apiKey": API_KEY}},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"},
                "hosts": [{"host": "sandbox.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "sandbox-tls", "hosts": ["sandbox.example.com"]}],
            },
        }
    },
    "servicemonitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                                       "labels": {"release": "prometheus"}}}
    },
    "metrics-tls": {"metrics": {"secure": True, "certSecret": "metrics-cert", "serviceMonitor": {"enabled": True}}},
    "grafana-dashboard": {"grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "OpenSandbox"}}}},
    "rbac-off-named-sa": {"rbac": {"create": False, "serviceAccount": {"create": False, "name": "sandbox-operator"}}},
    "three-replicas": {"controllerManager": {"replicas": 3}},
    "namespace-override": {"namespaceOverride": "sandbox-control"},
    "crds-off": {"crds": {"install": False}},
    "watch-namespace": {"controllerManager": {"watchNamespace": "team-a"}},
    "existing-secret": {"server": {"config": {"server": {"existingSecret": "my-api-key", "existingSecretKey": "token"}}}},
    "no-pod-exec": {"rbac": {"podExec": False}},
    "extras": {
        "extraRoles": {k: {"enabled": True} for k in ("batchsandboxEditor", "batchsandboxViewer", "poolEditor", "poolViewer")},
        "networkPolicy": {"enabled": True},
        "controllerManager": {
            "image": {"tag": "v9.9.9", "pullPolicy": "Always"},
            "kubeClient": {"qps": 50, "burst": 100},
            "logLevel": "debug",
            "extraArgs": ["--foo=bar"],
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "podAnnotations": {"example.com/a": "b"},
            "podLabels": {"team": "sandbox"},
            "priorityClassName": "system-cluster-critical",
            "snapshot": {"registry": "registry.example.com/snapshots", "pushSecret": "push",
                         "resumePullSecret": "pull", "imageCommitterImage": "committer:1", "registryInsecure": True,
                         "containerdSocketPath": "/run/k3s/containerd/containerd.sock"},
        },
        "server": {"image": {"repository": "opensandbox/server", "tag": "v0.1.14"}, "replicas": 2,
                   "config": {"server": {"port": 9090, "logLevel": "DEBUG"},
                              "runtime": {"execdImage": "opensandbox/execd:v1.0.18"},
                              "kubernetes": {"namespace": "sandboxes"},
                              "extraToml": "[egress]\nimage = \"opensandbox/egress:v1\"\n"}},
        "metrics": {"enabled": False},
    },
}


def write_values(values: dict, directory: str) -> str:
    path = os.path.join(directory, "values.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return path


def template_raw(values: dict, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        return run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                        "-f", write_values(values, tmp), *extra)


@functools.lru_cache(maxsize=None)
def render(case: str) -> tuple[dict, ...]:
    result = template_raw(CASES[case])
    assert result.returncode == 0, f"helm template ({case}) failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(case: str, kind: str) -> list[dict]:
    return [o for o in render(case) if o["kind"] == kind]


def one(case: str, kind: str, name: str | None = None) -> dict:
    found = [o for o in objects(case, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{case}: expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def manager_container(case: str) -> dict:
    pod = one(case, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "manager")


def args_of(case: str) -> list[str]:
    return manager_container(case)["args"]


def flag(case: str, name: str) -> str | None:
    prefix = f"--{name}="
    values = [a[len(prefix):] for a in args_of(case) if a.startswith(prefix)]
    assert len(values) <= 1, f"{name} given twice"
    return values[0] if values else None


def rule_triples(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def expand(groups: list[str], resources: list[str], verbs: list[str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g in groups for r in resources for v in verbs}


SANDBOX_KINDS = ["pools", "batchsandboxes", "sandboxsnapshots"]
CRUD = ["get", "list", "watch", "create", "update", "patch", "delete"]
# The verbs the manager uses (COMMON.md, "Kubernetes API verbs the manager uses").
CONTRACT_RULES = (
    expand(["sandbox.opensandbox.io"], SANDBOX_KINDS, CRUD)
    | expand(["sandbox.opensandbox.io"], [f"{k}/status" for k in SANDBOX_KINDS], ["get", "update", "patch"])
    | expand(["sandbox.opensandbox.io"], [f"{k}/finalizers" for k in SANDBOX_KINDS], ["update"])
    | expand([""], ["pods"], CRUD)
    | expand([""], ["pods/status", "pods/log"], ["get"])
    | expand([""], ["pods/exec"], ["create"])
    | expand(["", "events.k8s.io"], ["events"], ["create", "patch", "list", "watch", "get"])
    | expand(["batch"], ["jobs"], ["get", "list", "watch", "create", "delete"])
    | expand([""], ["secrets"], ["get"])
    | expand([""], ["configmaps"], ["get", "list", "watch"])
)
LEASE_RULES = expand(["coordination.k8s.io"], ["leases"], ["get", "create", "update", "patch"])


# --- lint and package -------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    {},
    CASES["extras"],
    {"controllerManager": {"replicas": 2, "watchNamespace": "team-a"},
     "server": {"service": {"type": "NodePort"}, "ingress": {"enabled": True}},
     "metrics": {"serviceMonitor": {"enabled": True}}, "crds": {"install": False}},
], ids=["defaults", "extras", "mixed"])
def test_lint_strict(values):
    with tempfile.TemporaryDirectory() as tmp:
        result = run_helm("lint", "--strict", str(CHART), "-f", write_values(values, tmp))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_package_contains_crds_and_no_scripts():
    with tempfile.TemporaryDirectory() as tmp:
        result = run_helm("package", str(CHART), "--destination", tmp)
        assert result.returncode == 0, result.stderr
        meta = chart_meta()
        archive = Path(tmp) / f"{meta['name']}-{meta['version']}.tgz"
        assert archive.exists()
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        crds = {n for n in names if n.startswith("opensandbox-controller/files/crds/")}
        assert len(crds) == 3, names
        assert not any(n.startswith("opensandbox-controller/crds/") for n in names), \
            "crds/ must stay hidden from helm's install-only CRD handling"
        # The packaged chart renders like the directory.
        rendered = run_helm("template", RELEASE, str(archive), "--namespace", NAMESPACE)
        assert rendered.returncode == 0, rendered.stderr
        kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
        assert kinds.count("CustomResourceDefinition") == 3


def test_chart_metadata():
    meta = chart_meta()
    assert meta["apiVersion"] == "v2"
    assert meta["version"] == "0.1.0"
    assert meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.33.0-0"


# --- schema validation ------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_passes_kubernetes_validate(case):
    for obj in render(case):
        if obj["kind"] == "ServiceMonitor":
            continue  # a prometheus-operator CRD kind: checked field by field below
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{case}: {obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}")


def test_kubernetes_validate_cli_accepts_default_render():
    result = template_raw({})
    assert result.returncode == 0, result.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(result.stdout)
        f.flush()
        cli = Path(sys.executable).parent / "kubernetes-validate"
        check = subprocess.run([str(cli), "--strict", "-k", K8S_VERSION, "--quiet", f.name],
                               capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# --- defaults ---------------------------------------------------------------------------

def test_defaults_render_the_expected_objects():
    names = {(o["kind"], o["metadata"]["name"]) for o in render("defaults")}
    assert names == {
        ("ServiceAccount", MANAGER),
        ("Secret", SERVER),
        ("ConfigMap", SERVER),
        ("CustomResourceDefinition", "pools.sandbox.opensandbox.io"),
        ("CustomResourceDefinition", "batchsandboxes.sandbox.opensandbox.io"),
        ("CustomResourceDefinition", "sandboxsnapshots.sandbox.opensandbox.io"),
        ("ClusterRole", f"{FULLNAME}-manager"),
        ("ClusterRoleBinding", f"{FULLNAME}-manager"),
        ("Role", f"{FULLNAME}-leader-election"),
        ("RoleBinding", f"{FULLNAME}-leader-election"),
        ("Service", SERVER),
        ("Service", f"{FULLNAME}-metrics"),
        ("Deployment", MANAGER),
    }
    for obj in render("defaults"):
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_default_image_tags_follow_app_version():
    app = chart_meta()["appVersion"]
    c = manager_container("defaults")
    assert c["image"] == f"opensandbox/manager:{app}"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert flag("defaults", "executor-image") == f"opensandbox/executor:{app}"
    assert flag("defaults", "task-executor-image") == f"opensandbox/executor:{app}"


def test_default_manager_args():
    args = args_of("defaults")
    assert args[0] == "manager"
    assert flag("defaults", "leader-elect") == "true"
    assert flag("defaults", "leader-election-id") == "opensandbox-controller-leader"
    assert flag("defaults", "leader-election-namespace") == NAMESPACE
    assert flag("defaults", "lease-duration") == "15s"
    assert flag("defaults", "renew-deadline") == "10s"
    assert flag("defaults", "retry-period") == "2s"
    assert flag("defaults", "namespace") is None
    assert flag("defaults", "kube-client-qps") == "0"
    assert flag("defaults", "kube-client-burst") == "0"
    assert flag("defaults", "metrics-bind-address") == "0.0.0.0:8443"
    assert flag("defaults", "health-probe-bind-address") == "0.0.0.0:8081"
    assert flag("defaults", "api-bind-address") == "0.0.0.0:8080"
    assert flag("defaults", "config") == "/etc/opensandbox/config.toml"
    assert flag("defaults", "log-level") == "info"
    assert flag("defaults", "log-format") == "json"
    assert flag("defaults", "snapshot-registry") is None


def test_default_resources_probes_and_security():
    dep = one("defaults", "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = manager_container("defaults")
    assert dep["spec"]["replicas"] == 1
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"},
                              "requests": {"cpu": "10m", "memory": "64Mi"}}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8081, "metrics": 8443, "api": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is True
    assert one("defaults", "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == MANAGER
    assert 10 <= pod["terminationGracePeriodSeconds"] <= 60
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "config": "/etc/opensandbox"}
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # The leader publishes http://$POD_IP:<api port> on its Lease; followers relay there.
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert not objects("defaults", "PodDisruptionBudget")
    assert not objects("defaults", "NetworkPolicy")


def test_default_api_key_comes_from_a_generated_secret():
    secret = one("defaults", "Secret", SERVER)
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert len(key) >= 32
    env = {e["name"]: e for e in manager_container("defaults")["env"]}
    assert env["OPENSANDBOX_SERVER_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": SERVER, "key": "api-key"}
    assert key not in one("defaults", "ConfigMap")["data"]["config.toml"]


def test_default_config_toml():
    toml = one("defaults", "ConfigMap", SERVER)["data"]["config.toml"]
    if sys.version_info >= (3, 11):
        import tomllib
        parsed = tomllib.loads(toml)
        assert parsed == {
            "server": {"host": "0.0.0.0", "port": 8080, "log_level": "INFO"},
            "runtime": {"type": "kubernetes", "execd_image": f"opensandbox/executor:{chart_meta()['appVersion']}"},
            "kubernetes": {"namespace": NAMESPACE, "workload_provider": "batchsandbox"},
        }
    assert "api_key" not in toml


def test_default_services():
    api = one("defaults", "Service", SERVER)
    assert api["spec"]["type"] == "ClusterIP"
    assert api["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "api", "protocol": "TCP"}]
    pod_labels = one("defaults", "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"].items() <= pod_labels.items()
    metrics = one("defaults", "Service", f"{FULLNAME}-metrics")
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 8443, "targetPort": "metrics", "protocol": "TCP"}]
    assert metrics["spec"]["selector"].items() <= pod_labels.items()


def test_default_rbac_is_exactly_the_contract():
    role = one("defaults", "ClusterRole", f"{FULLNAME}-manager")
    assert rule_triples(role["rules"]) == CONTRACT_RULES
    assert "*" not in str(role["rules"])
    binding = one("defaults", "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{FULLNAME}-manager"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": MANAGER, "namespace": NAMESPACE}]
    lease = one("defaults", "Role", f"{FULLNAME}-leader-election")
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert rule_triples(lease["rules"]) == LEASE_RULES
    lease_binding = one("defaults", "RoleBinding")
    assert lease_binding["roleRef"]["name"] == lease["metadata"]["name"]
    assert lease_binding["subjects"][0]["name"] == MANAGER


def test_pod_exec_can_be_dropped():
    role = one("no-pod-exec", "ClusterRole", f"{FULLNAME}-manager")
    assert rule_triples(role["rules"]) == CONTRACT_RULES - {("", "pods/exec", "create")}


def test_crds_carry_keep_policy():
    crds = objects("defaults", "CustomResourceDefinition")
    assert {c["spec"]["names"]["kind"] for c in crds} == {"Pool", "BatchSandbox", "SandboxSnapshot"}
    for crd in crds:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "namespace" not in crd["metadata"]


def test_crds_match_the_generated_files():
    generated = {}
    for path in (CHART / "crds").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        generated[doc["metadata"]["name"]] = doc
    assert len(generated) == 3
    for crd in objects("defaults", "CustomResourceDefinition"):
        assert crd["spec"] == generated[crd["metadata"]["name"]]["spec"]


# --- the value matrix -------------------------------------------------------------------

def test_server_disabled():
    kinds = {(o["kind"], o["metadata"]["name"]) for o in render("server-disabled")}
    assert ("Service", SERVER) not in kinds
    assert not objects("server-disabled", "ConfigMap")
    assert not objects("server-disabled", "Secret")
    assert not objects("server-disabled", "Ingress")
    assert flag("server-disabled", "api-bind-address") == "0"
    assert flag("server-disabled", "config") is None
    c = manager_container("server-disabled")
    assert "OPENSANDBOX_SERVER_API_KEY" not in {e["name"] for e in c["env"]}
    assert "api" not in {p["name"] for p in c["ports"]}
    assert ("Service", f"{FULLNAME}-metrics") in kinds


def test_nodeport():
    svc = one("nodeport", "Service", SERVER)
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["nodePort"] == 30080


def test_ingress_with_tls():
    ing = one("ingress-tls", "Ingress", SERVER)
    spec = ing["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "sandbox-tls", "hosts": ["sandbox.example.com"]}]
    assert ing["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}
    rule = spec["rules"][0]
    assert rule["host"] == "sandbox.example.com"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix",
                                      "backend": {"service": {"name": SERVER, "port": {"name": "http"}}}}]


def test_api_key_only_in_the_secret():
    secret = one("ingress-tls", "Secret", SERVER)
    assert base64.b64decode(secret["data"]["api-key"]).decode() == API_KEY
    for case in CASES:
        for cm in objects(case, "ConfigMap"):
            assert API_KEY not in yaml.safe_dump(cm), f"{case}: API key leaked into ConfigMap {cm['metadata']['name']}"
    # Nowhere else in clear text either (the Secret holds it base64-encoded).
    assert API_KEY not in yaml.safe_dump_all(render("ingress-tls"))


def test_existing_secret():
    assert not objects("existing-secret", "Secret")
    env = {e["name"]: e for e in manager_container("existing-secret")["env"]}
    assert env["OPENSANDBOX_SERVER_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "my-api-key", "key": "token"}


def test_servicemonitor():
    sm = one("servicemonitor", "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == NAMESPACE
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "scheme": "http", "path": "/metrics",
                                        "interval": "15s", "scrapeTimeout": "5s"}]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    metrics_svc = one("servicemonitor", "Service", f"{FULLNAME}-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= metrics_svc["metadata"]["labels"].items()
    api_svc = one("servicemonitor", "Service", SERVER)
    assert not sm["spec"]["selector"]["matchLabels"].items() <= api_svc["metadata"]["labels"].items()
    assert not objects("defaults", "ServiceMonitor")


def test_rbac_off_with_named_service_account():
    kinds = {o["kind"] for o in render("rbac-off-named-sa")}
    assert not kinds & {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    pod = one("rbac-off-named-sa", "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "sandbox-operator"


def test_three_replicas_get_a_pdb_and_leader_election():
    dep = one("three-replicas", "Deployment")
    assert dep["spec"]["replicas"] == 3
    assert flag("three-replicas", "leader-elect") == "true"
    pdb = one("three-replicas", "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_metrics_over_tls():
    assert flag("metrics-tls", "metrics-secure") == "true"
    assert flag("metrics-tls", "metrics-cert-path") == "/etc/opensandbox-metrics-certs"
    assert flag("defaults", "metrics-secure") is None
    mounts = {m["name"]: m for m in manager_container("metrics-tls")["volumeMounts"]}
    assert mounts["metrics-certs"] == {"name": "metrics-certs", "mountPath": "/etc/opensandbox-metrics-certs",
                                       "readOnly": True}
    volumes = {v["name"]: v for v in one("metrics-tls", "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["metrics-certs"]["secret"]["secretName"] == "metrics-cert"
    endpoint = one("metrics-tls", "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": f"{FULLNAME}-metrics.{NAMESPACE}.svc",
                                     "ca": {"secret": {"name": "metrics-cert", "key": "ca.crt"}}}
    custom = template_raw({"metrics": {"secure": True, "certSecret": "c",
                                       "serviceMonitor": {"enabled": True, "tlsConfig": {"insecureSkipVerify": True}}}})
    assert custom.returncode == 0, custom.stderr
    sm = next(d for d in yaml.safe_load_all(custom.stdout) if d and d["kind"] == "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["tlsConfig"] == {"insecureSkipVerify": True}
    missing = template_raw({"metrics": {"secure": True}})
    assert missing.returncode != 0
    assert "metrics.certSecret is required" in missing.stderr


def test_replicas_without_leader_election_fail():
    result = template_raw({"controllerManager": {"replicas": 2, "leaderElect": False}})
    assert result.returncode != 0
    assert "leaderElect" in result.stderr


def test_single_replica_without_leader_election():
    result = template_raw({"controllerManager": {"leaderElect": False}})
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert not [d for d in docs if d["kind"] == "Role"]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect=false" in args
    assert not [a for a in args if a.startswith("--lease-duration")]


def test_namespace_override():
    for obj in render("namespace-override"):
        if obj["kind"] in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            continue
        assert obj["metadata"]["namespace"] == "sandbox-control", obj["metadata"]["name"]
    binding = one("namespace-override", "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "sandbox-control"
    assert flag("namespace-override", "leader-election-namespace") == "sandbox-control"


def test_crds_install_false_skips_them():
    assert not objects("crds-off", "CustomResourceDefinition")
    assert objects("crds-off", "Deployment")


def test_watch_namespace_uses_a_role():
    assert not objects("watch-namespace", "ClusterRole")
    assert not objects("watch-namespace", "ClusterRoleBinding")
    role = one("watch-namespace", "Role", f"{FULLNAME}-manager")
    assert role["metadata"]["namespace"] == "team-a"
    assert rule_triples(role["rules"]) == CONTRACT_RULES
    binding = one("watch-namespace", "RoleBinding", f"{FULLNAME}-manager")
    assert binding["metadata"]["namespace"] == "team-a"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{FULLNAME}-manager"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": MANAGER, "namespace": NAMESPACE}]
    lease = one("watch-namespace", "Role", f"{FULLNAME}-leader-election")
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert flag("watch-namespace", "namespace") == "team-a"
    toml = one("watch-namespace", "ConfigMap")["data"]["config.toml"]
    assert 'namespace = "team-a"' in toml


def test_extras():
    case = "extras"
    c = manager_container(case)
    pod = one(case, "Deployment")["spec"]["template"]
    assert c["image"] == "opensandbox/manager:v9.9.9"
    assert c["imagePullPolicy"] == "Always"
    assert flag(case, "kube-client-qps") == "50"
    assert flag(case, "kube-client-burst") == "100"
    assert flag(case, "log-level") == "debug"
    assert flag(case, "metrics-bind-address") == "0"
    assert flag(case, "api-bind-address") == "0.0.0.0:9090"
    assert flag(case, "snapshot-registry") == "registry.example.com/snapshots"
    assert flag(case, "snapshot-push-secret") == "push"
    assert flag(case, "resume-pull-secret") == "pull"
    assert flag(case, "image-committer-image") == "committer:1"
    assert flag(case, "snapshot-registry-insecure") == "true"
    assert flag(case, "containerd-socket-path") == "/run/k3s/containerd/containerd.sock"
    assert c["args"][-1] == "--foo=bar"
    assert {"name": "EXTRA", "value": "1"} in c["env"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8081, "api": 9090}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"]["example.com/a"] == "b"
    assert pod["metadata"]["labels"]["team"] == "sandbox"
    # The SDK API stays in the manager container whatever server.image / server.replicas say.
    assert len(pod["spec"]["containers"]) == 1
    assert one(case, "Deployment")["spec"]["replicas"] == 1
    toml = one(case, "ConfigMap")["data"]["config.toml"]
    assert 'port = 9090' in toml and 'log_level = "DEBUG"' in toml
    assert 'execd_image = "opensandbox/execd:v1.0.18"' in toml
    assert 'namespace = "sandboxes"' in toml
    assert '[egress]' in toml
    assert not objects(case, "Service") or all(s["metadata"]["name"] != f"{FULLNAME}-metrics" for s in objects(case, "Service"))


def test_extra_roles():
    roles = {r["metadata"]["name"]: r for r in objects("extras", "ClusterRole")}
    editor = roles[f"{FULLNAME}-batchsandbox-editor"]
    viewer = roles[f"{FULLNAME}-pool-viewer"]
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert rule_triples(editor["rules"]) == (
        expand(["sandbox.opensandbox.io"], ["batchsandboxes"], CRUD)
        | expand(["sandbox.opensandbox.io"], ["batchsandboxes/status"], ["get"]))
    assert rule_triples(viewer["rules"]) == (
        expand(["sandbox.opensandbox.io"], ["pools"], ["get", "list", "watch"])
        | expand(["sandbox.opensandbox.io"], ["pools/status"], ["get"]))
    assert f"{FULLNAME}-pool-editor" in roles and f"{FULLNAME}-batchsandbox-viewer" in roles


def test_network_policy():
    np_ = one("extras", "NetworkPolicy")
    assert np_["spec"]["podSelector"]["matchLabels"] == one("extras", "Deployment")["spec"]["selector"]["matchLabels"]
    selector = one("extras", "Deployment")["spec"]["selector"]["matchLabels"]
    peers, *by_port = np_["spec"]["ingress"]
    assert peers == {"from": [{"podSelector": {"matchLabels": selector}}]}
    ports = [r["ports"][0]["port"] for r in by_port]
    assert ports == ["health", "api"]  # metrics disabled in this case
    result = template_raw({"networkPolicy": {"enabled": True}})
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    np_ = next(d for d in docs if d["kind"] == "NetworkPolicy")
    rules = {r["ports"][0]["port"]: r for r in np_["spec"]["ingress"] if "ports" in r}
    assert set(rules) == {"health", "metrics", "api"}
    assert rules["metrics"]["from"] == [{"namespaceSelector": {"matchLabels": {"metrics": "enabled"}}}]
    assert "from" not in rules["api"]


def test_notes_warn_about_ignored_server_values():
    with tempfile.TemporaryDirectory() as tmp:
        result = run_helm("install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
                          "-f", write_values(CASES["extras"], tmp))
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "server.image (opensandbox/server:v0.1.14) is ignored" in notes
    assert "server.replicas is ignored" in notes


# --- docs -------------------------------------------------------------------------------

def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not re.search(r"resources|SecurityContext|annotations|labels", key, re.I):
            keys.extend(leaf_keys(value, path + "."))
        else:
            keys.append(path)
    return keys


def test_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [k for k in leaf_keys(values) if f"`{k}`" not in readme]
    assert not missing, f"values missing from the README table: {missing}"


# --- scripts and images -----------------------------------------------------------------

SCRIPTS = sorted((CHART / "scripts").glob("*.sh"))


def test_scripts_exist_and_parse():
    assert {p.name for p in SCRIPTS} == {"install.sh", "uninstall.sh", "e2e-test.sh"}
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_scripts_are_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def fake_tools(directory: Path) -> Path:
    """helm and kubectl stand-ins that log their arguments, one call per line."""
    log = directory / "calls.log"
    for tool in ("helm", "kubectl"):
        stub = directory / tool
        stub.write_text(
            "#!/usr/bin/env bash\n"
            f'echo "{tool} $*" >> "{log}"\n'
            'case "$*" in\n'
            '  "config current-context") echo test-context ;;\n'
            '  *"get deployment"*) echo osb-opensandbox-controller-controller-manager ;;\n'
            '  "status "*) exit 0 ;;\n'
            "esac\n")
        stub.chmod(0o755)
    return log


def test_install_script_runs_helm_upgrade_install(tmp_path):
    log = fake_tools(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run([str(CHART / "scripts" / "install.sh"), "-n", "sbx", "-r", "rel", "-f", "my.yaml",
                             "--", "--set", "controllerManager.replicas=2"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    helm_call = next(c for c in calls if c.startswith("helm upgrade"))
    assert helm_call == (f"helm upgrade --install rel {CHART} --namespace sbx --create-namespace --wait "
                         "--timeout 5m -f my.yaml --set controllerManager.replicas=2")
    assert any(c.startswith("kubectl -n sbx rollout status deployment/") for c in calls)


def test_uninstall_script_purges_objects_before_the_release(tmp_path):
    log = fake_tools(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run([str(CHART / "scripts" / "uninstall.sh"), "-n", "sbx", "-r", "rel",
                             "--purge-crds", "--yes"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    order = [i for i, c in enumerate(calls) if "delete batchsandboxes" in c or c.startswith("helm uninstall")
             or c.startswith("kubectl delete crd ")]
    assert [calls[i].split()[1] for i in order] == ["delete", "uninstall", "delete"]
    assert calls[order[1]] == "helm uninstall rel --namespace sbx --wait"


def test_uninstall_script_keeps_crds_by_default(tmp_path):
    log = fake_tools(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run([str(CHART / "scripts" / "uninstall.sh")], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert "helm uninstall opensandbox --namespace opensandbox-system --wait" in calls
    assert not [c for c in calls if "delete" in c and c.startswith("kubectl")]


def test_dockerfiles():
    manager = (ROOT / "helm" / "Dockerfile.manager").read_text()
    executor = (ROOT / "helm" / "Dockerfile.executor").read_text()
    assert re.search(r"^FROM rust:\S+ AS builder$", manager, re.M)
    assert "distroless" in manager and "USER 65532:65532" in manager
    assert "--bin opensandbox" in manager
    assert "RUSTFLAGS='-C target-feature=+crt-static'" in executor
    assert "-p opensandbox-executor --target x86_64-unknown-linux-gnu" in executor
    assert re.search(r"^COPY --from=builder \S+ /opensandbox-executor$", executor, re.M)
    assert re.search(r"^FROM (scratch|busybox\S*)$", executor, re.M)


# --- schema and version guards ----------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"server": {"service": {"type": "Internal"}}}, "/server/service/type"),
    ({"controllerManager": {"replicaCount": 2}}, "replicaCount"),
    ({"controllerManager": {"logLevel": "verbose"}}, "/controllerManager/logLevel"),
    ({"server": {"config": {"server": {"port": 0}}}}, "/server/config/server/port"),
    ({"server": {"service": {"nodePort": 30080}}}, "nodePort needs"),
    ({"server": {"enabled": False, "ingress": {"enabled": True}}}, "server.ingress.enabled needs server.enabled"),
])
def test_bad_values_are_rejected(values, message):
    result = template_raw(values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_kube_version_floor():
    assert template_raw({}, "--kube-version", "1.32.0").returncode != 0
    assert template_raw({}, "--kube-version", "1.33.0").returncode == 0


def test_replicas_are_spread_across_nodes():
    pod = one("three-replicas", "Deployment")["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert "topologySpreadConstraints" not in one("defaults", "Deployment")["spec"]["template"]["spec"]


def test_ipv6_api_host_is_bracketed():
    result = template_raw({"server": {"config": {"server": {"host": "::"}}}})
    assert result.returncode == 0, result.stderr
    assert "--api-bind-address=[::]:8080" in result.stdout


def test_missing_crd_link_fails_loudly(tmp_path):
    # A checkout without symlink support turns files/crds into a text file: rendering must stop
    # instead of silently dropping the CRDs.
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy, symlinks=True)
    (copy / "files" / "crds").unlink()
    (copy / "files" / "crds").write_text("../crds\n")
    result = run_helm("template", RELEASE, str(copy))
    assert result.returncode != 0
    assert "files/crds must be a symbolic link" in result.stderr
    assert run_helm("template", RELEASE, str(copy), "--set", "crds.install=false").returncode == 0


def test_grafana_dashboard_configmap():
    assert not [o for o in render("defaults") if o["metadata"]["name"].endswith("-dashboard")]
    cm = one("grafana-dashboard", "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "OpenSandbox"}
    import json

    shipped = json.loads((CHART / "files" / "dashboards" / "opensandbox.json").read_text())
    dashboard = json.loads(cm["data"]["opensandbox.json"])
    assert dashboard == shipped
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Pool fill", "Allocation latency (SDK create to allocated)", "API latency by route (p99)",
            "API errors and rate-limited requests", "Leader"} <= titles
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert re.search(r"\b(opensandbox|process)_[a-z_]+", target["expr"]), target
