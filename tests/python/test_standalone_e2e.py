"""End to end: `opensandbox standalone` as a subprocess, driven by the official SDK (PyPI 1.1.1)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
from datetime import timedelta

import httpx
import pytest

from ports import free_port
from opensandbox.config.connection_sync import ConnectionConfigSync
from opensandbox.models.execd import RunCommandOpts
from opensandbox.models.filesystem import WriteEntry
from opensandbox.models.sandboxes import SandboxFilter
from opensandbox.sync.manager import SandboxManagerSync
from opensandbox.sync.sandbox import SandboxSync

REPO = pathlib.Path(__file__).resolve().parents[2]
# Standalone always authenticates; the SDK and CLI read the key from this variable.
API_KEY = "e2e-standalone-api-key"
os.environ["OPEN_SANDBOX_API_KEY"] = API_KEY
_api = httpx.Client(headers={"OPEN-SANDBOX-API-KEY": API_KEY})


def _bin(env: str, name: str) -> str:
    path = os.environ.get(env) or str(REPO / "target" / "debug" / name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `cargo build --workspace --bins` (hack/test.sh does)")
    return path


@pytest.fixture(scope="module")
def standalone():
    state = REPO / "target" / "e2e-standalone"
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    env = dict(os.environ, OPENSANDBOX_EXECUTOR_BIN=_bin("OPENSANDBOX_EXECUTOR_BIN", "opensandbox-executor"))
    proc = subprocess.Popen(
        [_bin("OPENSANDBOX_BIN", "opensandbox"), "standalone", "--state-dir", str(state),
         "--listen", f"127.0.0.1:{port}", "--api-key", API_KEY],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("standalone did not come up: " + (proc.stdout.read() if proc.stdout else ""))
    # Wait for the default pool's warm sandboxes.
    kubeconfig = state / "kubeconfig"
    yield {"base": base, "port": port, "state": state, "proc": proc, "kubeconfig": kubeconfig}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _config(sa, proxy=False) -> ConnectionConfigSync:
    return ConnectionConfigSync(
        domain=f"127.0.0.1:{sa['port']}", protocol="http",
        request_timeout=timedelta(seconds=60), use_server_proxy=proxy,
    )


def _pids_of(sandbox_dir: pathlib.Path) -> list[int]:
    """Processes whose working directory is inside a sandbox's directory."""
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if str(os.readlink(p / "cwd")).startswith(str(sandbox_dir)):
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def _kube_token(sa) -> str:
    for line in sa["kubeconfig"].read_text().splitlines():
        if line.strip().startswith("token:"):
            return line.split("token:", 1)[1].strip()
    raise AssertionError("no token in the kubeconfig")


def _kube_get(sa, url: str) -> httpx.Response:
    """GET on the embedded Kubernetes API with the kubeconfig's bearer token."""
    return httpx.get(url, headers={"Authorization": f"Bearer {_kube_token(sa)}"}, timeout=5)


def _kube_server(sa) -> str:
    for line in sa["kubeconfig"].read_text().splitlines():
        if line.strip().startswith("server:"):
            return line.split("server:", 1)[1].strip()
    raise AssertionError("no server in the kubeconfig")


def _sandbox_pod_dirs(sa, sandbox_id: str) -> list[pathlib.Path]:
    """Directories of the pods serving a sandbox, found through its execd endpoint's pod IP."""
    ep = _api.get(f"{sa['base']}/v1/sandboxes/{sandbox_id}/endpoints/44772", timeout=5).json()["endpoint"]
    ip = ep.split(":")[0]
    pods = _kube_get(sa, f"{_kube_server(sa)}/api/v1/namespaces/default/pods").json()["items"]
    names = [p["metadata"]["name"] for p in pods if p.get("status", {}).get("podIP") == ip]
    assert names, f"no pod has IP {ip}"
    return [sa["state"] / "node" / "pods" / "default" / n for n in names]


def _exercise(sandbox: SandboxSync):
    result = sandbox.commands.run("echo hello; echo oops 1>&2; exit 3")
    out = "".join(m.text for m in result.logs.stdout)
    err = "".join(m.text for m in result.logs.stderr)
    assert "hello" in out
    assert "oops" in err
    assert result.exit_code == 3 or result.error is not None

    bg = sandbox.commands.run("sleep 0.2; echo done-bg", opts=RunCommandOpts(background=True))
    assert bg.id

    sandbox.files.write_files([WriteEntry(path="/tmp/e2e.txt", data="round trip")])
    assert sandbox.files.read_file("/tmp/e2e.txt") == "round trip"

    session = sandbox.commands.create_session()
    sandbox.commands.run_in_session(session, "export E2E_VAR=kept; cd /tmp")
    r = sandbox.commands.run_in_session(session, "echo $E2E_VAR $(pwd)")
    assert "kept /tmp" in "".join(m.text for m in r.logs.stdout)
    sandbox.commands.delete_session(session)


@pytest.mark.parametrize("pooled", [True, False])
def test_create_run_files_sessions_kill(standalone, pooled):
    ext = {"poolRef": "default"} if pooled else None
    sandbox = SandboxSync.create(
        "host", connection_config=_config(standalone), extensions=ext,
        timeout=timedelta(minutes=5), ready_timeout=timedelta(seconds=60),
        metadata={"suite": "e2e"},
    )
    try:
        _exercise(sandbox)
        info = sandbox.get_info()
        assert info.status.state == "Running"
        sandbox.renew(timedelta(minutes=10))
        manager = SandboxManagerSync.create(connection_config=_config(standalone))
        listed = manager.list_sandbox_infos(SandboxFilter(metadata={"suite": "e2e"}))
        assert any(s.id == sandbox.id for s in listed.sandbox_infos)
        held = _sandbox_pod_dirs(standalone, sandbox.id)
        assert all(d.exists() for d in held)
    finally:
        sandbox.kill()
    deadline = time.time() + 20
    while time.time() < deadline:
        gone = _api.get(f"{standalone['base']}/v1/sandboxes/{sandbox.id}", timeout=5).status_code == 404
        if gone and not any(d.exists() for d in held):
            break
        time.sleep(0.2)
    assert gone, "the killed sandbox is still listed"
    for d in held:
        assert not d.exists(), f"{d} survived the kill"
        assert not _pids_of(d), f"processes of {d} survived the kill"


def test_server_proxy_mode(standalone):
    sandbox = SandboxSync.create(
        "host", connection_config=_config(standalone, proxy=True), extensions={"poolRef": "default"},
        ready_timeout=timedelta(seconds=60),
    )
    try:
        r = sandbox.commands.run("echo via-proxy")
        assert "via-proxy" in "".join(m.text for m in r.logs.stdout)
        _exercise(sandbox)
        assert sandbox.get_info().status.state == "Running"
        sandbox.renew(timedelta(minutes=10))
    finally:
        sandbox.kill()


@pytest.mark.parametrize("proxy", [False, True])
def test_secure_access_gives_each_sandbox_its_own_executor_token(standalone, proxy):
    cfg = _config(standalone, proxy=proxy)
    first = SandboxSync.create("host", connection_config=cfg, secure_access=True,
                               ready_timeout=timedelta(seconds=60))
    second = SandboxSync.create("host", connection_config=cfg, secure_access=True,
                                ready_timeout=timedelta(seconds=60))
    try:
        # The SDK sends the token the endpoint lookup hands out.
        r = first.commands.run("echo secured; echo token=${EXECD_ACCESS_TOKEN:-none}")
        out = "".join(m.text for m in r.logs.stdout)
        assert "secured" in out and "token=none" in out, out
        eps = [_api.get(f"{standalone['base']}/v1/sandboxes/{s.id}/endpoints/44772",
                         timeout=5).json() for s in (first, second)]
        tokens = [e["headers"]["X-EXECD-ACCESS-TOKEN"] for e in eps]
        assert len(set(tokens)) == 2 and all(len(t) == 64 for t in tokens)
        # Straight to the executor: no token or another sandbox's token is refused.
        url = f"http://{eps[0]['endpoint']}/ping"
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers={"X-EXECD-ACCESS-TOKEN": tokens[1]}, timeout=5).status_code == 401
        assert httpx.get(url, headers={"X-EXECD-ACCESS-TOKEN": tokens[0]}, timeout=5).status_code == 200
    finally:
        first.kill()
        second.kill()


def test_secure_access_with_a_pool_is_refused(standalone):
    r = _api.post(f"{standalone['base']}/v1/sandboxes", timeout=10, json={
        "extensions": {"poolRef": "default"}, "timeout": 60, "secureAccess": True})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "SANDBOX::INVALID_PARAMETER"
    assert "secureAccess" in r.json()["message"]


def _osb(sa, *args: str) -> subprocess.CompletedProcess:
    osb = pathlib.Path(__file__).parent / ".venv" / "bin" / "osb"
    env = dict(os.environ, HOME=str(sa["state"]), NO_COLOR="1")
    return subprocess.run(
        [str(osb), "--domain", f"127.0.0.1:{sa['port']}", "--protocol", "http", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_cli_create_list_get_run_kill(standalone):
    created = _osb(standalone, "sandbox", "create", "--image", "host", "--extension", "poolRef=default", "-t", "10m", "-o", "json")
    assert created.returncode == 0, created.stdout + created.stderr
    sandbox_id = json.loads(created.stdout)["id"]
    listed = _osb(standalone, "sandbox", "list", "-o", "json")
    assert listed.returncode == 0 and sandbox_id in listed.stdout, listed.stdout + listed.stderr
    got = _osb(standalone, "sandbox", "get", sandbox_id, "-o", "json")
    assert got.returncode == 0 and "Running" in got.stdout, got.stdout + got.stderr
    ran = _osb(standalone, "command", "run", sandbox_id, "--", "echo", "from-cli")
    assert ran.returncode == 0 and "from-cli" in ran.stdout, ran.stdout + ran.stderr
    failed = _osb(standalone, "command", "run", sandbox_id, "--", "sh", "-c", "exit 4")
    assert failed.returncode != 0
    killed = _osb(standalone, "sandbox", "kill", sandbox_id)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    deadline = time.time() + 20
    while _api.get(f"{standalone['base']}/v1/sandboxes/{sandbox_id}", timeout=5).status_code != 404:
        assert time.time() < deadline, "osb sandbox kill did not remove the sandbox"
        time.sleep(0.2)


def _start(state: pathlib.Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, OPENSANDBOX_EXECUTOR_BIN=_bin("OPENSANDBOX_EXECUTOR_BIN", "opensandbox-executor"))
    proc = subprocess.Popen(
        [_bin("OPENSANDBOX_BIN", "opensandbox"), "standalone", "--state-dir", str(state), "--listen", f"127.0.0.1:{port}", "--api-key", API_KEY],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("standalone did not come up")


def _stop(proc: subprocess.Popen):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("standalone did not stop on SIGTERM")


def test_restart_keeps_pools_and_sandboxes_and_converges():
    state = REPO / "target" / "e2e-restart"
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    sa = {"port": port, "base": f"http://127.0.0.1:{port}", "state": state, "kubeconfig": state / "kubeconfig"}
    proc = _start(state, port)
    try:
        sandbox = SandboxSync.create("host", connection_config=_config(sa), extensions={"poolRef": "default"},
                                     timeout=timedelta(minutes=10), ready_timeout=timedelta(seconds=60))
        sandbox.files.write_files([WriteEntry(path="marker.txt", data="before restart")])
        sandbox_id = sandbox.id
        time.sleep(1.5)  # the store is saved within 500 ms of a change
    finally:
        # A crash, not a clean stop: sandboxes must die with the process all the same.
        proc.kill()
        proc.wait(timeout=10)
    time.sleep(0.5)
    # Nothing of the sandboxes survives the process.
    assert not [d for d in (state / "node" / "pods" / "default").iterdir() if _pids_of(d)]

    proc = _start(state, port)
    try:
        server = _kube_server(sa)
        pools = _kube_get(sa, f"{server}/apis/sandbox.opensandbox.io/v1alpha1/namespaces/default/pools").json()
        assert [p["metadata"]["name"] for p in pools["items"]] == ["default"]
        assert _api.get(f"{sa['base']}/v1/sandboxes/{sandbox_id}", timeout=5).status_code == 200
        # The sandbox's pod is restarted (its process died with the old standalone) and serves again.
        deadline = time.time() + 60
        while True:
            try:
                again = SandboxSync.connect(sandbox_id, connection_config=_config(sa))
                out = again.commands.run("echo back")
                if "back" in "".join(m.text for m in out.logs.stdout):
                    break
            except Exception:  # noqa: BLE001 - retried until the restarted pod is ready
                pass
            assert time.time() < deadline, "the restored sandbox never served again"
            time.sleep(0.5)
        pods = _kube_get(sa, f"{server}/api/v1/namespaces/default/pods").json()["items"]
        restarts = [c["restartCount"] for p in pods for c in p["status"].get("containerStatuses", [])]
        assert restarts and max(restarts) >= 1, "restored pods report their restart"
        again.kill()
    finally:
        _stop(proc)


def _kubectl(sa, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    local = REPO / ".cache" / "tools" / "bin" / "kubectl"
    kubectl = str(local) if local.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl not found: run hack/install-tools.sh (hack/test.sh does)"
    return subprocess.run(
        [kubectl, "--kubeconfig", str(sa["kubeconfig"]), "-n", "default", *args],
        input=stdin, capture_output=True, text=True, timeout=90,
    )


TASK_MANIFEST = """
apiVersion: sandbox.opensandbox.io/v1alpha1
kind: BatchSandbox
metadata:
  name: e2e-tasks
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: main
        image: host
        command: ["sleep", "infinity"]
  taskTemplate:
    spec:
      timeoutSeconds: 60
      process:
        command: ["sh", "-c", "test \\"${POD_NAME##*-}\\" = \\"$SHARD\\" && echo shard $SHARD"]
  shardTaskPatches:
  - spec: {process: {env: [{name: SHARD, value: "0"}]}}
  - spec: {process: {env: [{name: SHARD, value: "1"}]}}
"""


def test_kubectl_batchsandbox_runs_its_tasks(standalone):
    applied = _kubectl(standalone, "apply", "-f", "-", stdin=TASK_MANIFEST)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    deadline = time.time() + 60
    while True:
        got = _kubectl(standalone, "get", "bsbx", "e2e-tasks", "-o", "json")
        assert got.returncode == 0, got.stderr
        status = json.loads(got.stdout).get("status", {})
        if status.get("taskSucceed") == 2 or status.get("taskFailed"):
            break
        assert time.time() < deadline, f"tasks did not finish: {status}"
        time.sleep(0.3)
    assert status["taskSucceed"] == 2 and status.get("taskFailed", 0) == 0, status
    assert status["phase"] == "Succeed", status
    # The task columns of the printer (priority 1: `-o wide`).
    wide = _kubectl(standalone, "get", "bsbx", "e2e-tasks", "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    header, row = wide.stdout.strip().splitlines()[:2]
    columns = dict(zip(header.split(), row.split()))
    assert columns["NAME"] == "e2e-tasks", wide.stdout
    assert (columns["TASK_RUNNING"], columns["TASK_SUCCEED"], columns["TASK_FAILED"], columns["TASK_UNKNOWN"]) == \
        ("0", "2", "0", "0"), wide.stdout
    # Deletion stops the tasks (task-cleanup finalizer) and completes.
    started = time.time()
    deleted = _kubectl(standalone, "delete", "bsbx", "e2e-tasks", "--timeout=60s")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert time.time() - started < 40
    gone = _kubectl(standalone, "get", "bsbx", "e2e-tasks", "--ignore-not-found", "-o", "name")
    assert gone.stdout.strip() == "", gone.stdout

def _counter(sandbox_dir: pathlib.Path) -> int | None:
    """The background counter's value, read from the host (works while the sandbox is frozen)."""
    for f in sandbox_dir.rglob("pause-counter.txt"):
        try:
            return int(f.read_text().strip() or "0")
        except (OSError, ValueError):
            return None
    return None


def _wait_state(sandbox: SandboxSync, state: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        current = sandbox.get_info().status.state
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"sandbox never reached {state}; states seen: {seen}")


@pytest.mark.parametrize("pooled", [True, False])
def test_pause_freezes_and_resume_continues(standalone, pooled):
    ext = {"poolRef": "default"} if pooled else None
    config = _config(standalone)
    sandbox = SandboxSync.create(
        "host", connection_config=config, extensions=ext,
        timeout=timedelta(minutes=5), ready_timeout=timedelta(seconds=60),
    )
    try:
        sandbox.files.write_files([WriteEntry(path="kept.txt", data="survives the pause")])
        sandbox.commands.run(
            "i=0; while true; do i=$((i+1)); echo $i > .c.tmp; mv .c.tmp pause-counter.txt; sleep 0.05; done",
            opts=RunCommandOpts(background=True),
        )
        [pod_dir] = _sandbox_pod_dirs(standalone, sandbox.id)
        ip = _api.get(f"{standalone['base']}/v1/sandboxes/{sandbox.id}/endpoints/44772",
                       timeout=5).json()["endpoint"].split(":")[0]
        deadline = time.time() + 10
        while (_counter(pod_dir) or 0) < 3:
            assert time.time() < deadline, "the background counter never started"
            time.sleep(0.05)

        sandbox.pause()
        _wait_state(sandbox, "Paused")
        # Frozen: the counter stops advancing...
        frozen_at = _counter(pod_dir)
        time.sleep(1.0)
        assert _counter(pod_dir) == frozen_at, "the counter advanced while paused"
        # ...the executor takes connections but never answers...
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"http://{ip}:44772/ping", timeout=1.0)
        # ...and the server says the sandbox has no reachable endpoint, as for a paused k8s sandbox.
        r = _api.get(f"{standalone['base']}/v1/sandboxes/{sandbox.id}/endpoints/44772", timeout=5)
        assert r.status_code == 404 and r.json()["code"] == "KUBERNETES::POD_IP_NOT_AVAILABLE"
        # A second pause is refused; the sandbox stays paused.
        r = _api.post(f"{standalone['base']}/v1/sandboxes/{sandbox.id}/pause", timeout=5)
        assert r.status_code == 409 and r.json()["message"] == "Sandbox is already paused"

        resumed = SandboxSync.resume(sandbox.id, connection_config=config,
                                     resume_timeout=timedelta(seconds=60))
        assert resumed.get_info().status.state == "Running"
        before = int(resumed.files.read_file("pause-counter.txt").strip())
        assert before >= frozen_at
        time.sleep(0.5)
        after = int(resumed.files.read_file("pause-counter.txt").strip())
        assert after > before, "the counter did not continue after resume"
        assert resumed.files.read_file("kept.txt") == "survives the pause"
        # Standalone has no registry: user snapshots are refused clearly.
        r = _api.post(f"{standalone['base']}/v1/sandboxes/{sandbox.id}/snapshots", json={}, timeout=5)
        assert r.status_code == 501 and r.json()["code"] == "SNAPSHOT::NOT_IMPLEMENTED"
        r = resumed.commands.run("echo still-here")
        assert "still-here" in "".join(m.text for m in r.logs.stdout)
    finally:
        sandbox.kill()
