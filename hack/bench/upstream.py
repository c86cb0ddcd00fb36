"""Side by side: our SDK API and the upstream Python lifecycle server (`opensandbox-server` from
PyPI, Kubernetes runtime, BatchSandbox workload provider) driven with the same official-SDK load.

One `opensandbox standalone` process provides the embedded Kubernetes API server, our manager
(which reconciles every BatchSandbox, whoever created it), the node agent running pods with our
executor, and our own SDK API. The upstream server is pointed at the standalone kubeconfig, so
both servers hand out sandboxes from the same Pool (`extensions.poolRef`). Each create
is `SandboxSync.create` (POST, wait until Running, execd health check) followed by `kill`, from
a `bench` Pool whose buffer holds every create of a run (refilled before the second server).
The SDK load runs 256 creates per server by default: an upstream sandbox's pods are released only
after its entrypoint task has been cleaned up, well after `kill` returns, so a short run leaves
much of upstream's pod work after its clock stops (64 creates: 3.0 ms of pod CPU per upstream
create inside the window; 256: 14.9 ms) and overstates its sustained rate.

Run (after `cargo build --release --workspace --bins`, `hack/python-env.sh`, and
`python3 -m venv .cache/upstream-venv && .cache/upstream-venv/bin/pip install opensandbox-server`):
    tests/python/.venv/bin/python hack/bench/upstream.py [--creates 256 --concurrency 8]
A second load, `*_server_only`, times the bare POST /v1/sandboxes (then DELETE) on kept-alive
connections: the servers' own create path without the SDK's endpoint lookups and health check.
A third, `*_native`, is the same POST from the native load generator (`bench-sdk-create
--target`, one Rust process, 16 keep-alive connections), so the client costs next to nothing and
the figure is the server's capacity; `*_native_running` also polls GET until the sandbox is
Running. The native runs delete what they created after the clock stops.
Last, `null_server`: the same SDK load against a lifecycle server that does nothing
(`bench-sdk-create --null-server`, answers from memory, no sandboxes or pods). Its creates/s is
what this load can reach on this machine whatever the server, so `null_server / upstream` is the
ceiling of the ours/upstream ratio here. Every SDK load also reports the client processes' own
CPU per create.
Prints one JSON object; a server that cannot be driven gets null figures and an `error`.
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import httpx
from opensandbox.config.connection_sync import ConnectionConfigSync
from opensandbox.sync.sandbox import SandboxSync

REPO = pathlib.Path(__file__).resolve().parents[2]
NATIVE = "examples/bench-sdk-create"
UPSTREAM_VENV = REPO / ".cache" / "upstream-venv"
# The upstream server refuses to start without an API key; both servers get the same header.
API_KEY = "bench-api-key"


# Upstream's pool mode runs each sandbox's entrypoint as a task, `exec /opt/opensandbox/bootstrap.sh
# <entrypoint>`; in a cluster its execd image's init container puts the script there. Our
# standalone pods see the host's filesystem, so the run provides the script (exec the entrypoint,
# as upstream's does once execd is up: ours already runs in every pod) and removes it after.
BOOTSTRAP = pathlib.Path("/opt/opensandbox/bootstrap.sh")


def provide_bootstrap() -> tuple[bool, str | None]:
    """(created, error): creates BOOTSTRAP unless it exists; error when it cannot."""
    if BOOTSTRAP.exists():
        return False, None
    try:
        BOOTSTRAP.parent.mkdir(parents=True, exist_ok=True)
        BOOTSTRAP.write_text('#!/bin/sh\nexec "$@"\n')
        BOOTSTRAP.chmod(0o755)
        return True, None
    except OSError as e:
        return False, f"cannot provide {BOOTSTRAP} ({e}): upstream-created sandboxes' entrypoint tasks fail"


# Time the client processes get to set up (SDK connection, one untimed create) before the clock
# starts; a process that needs longer starts late and is counted in `late_starts`.
SETUP_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p))]


def wait_http(url: str, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {seconds:.0f} s")


def upstream_config(path: pathlib.Path, port: int, kubeconfig: pathlib.Path, state: pathlib.Path) -> None:
    path.write_text(
        f"""[server]
host = "127.0.0.1"
port = {port}
api_key = "{API_KEY}"
max_sandbox_timeout_seconds = 86400

[log]
level = "WARNING"

[runtime]
type = "kubernetes"
execd_image = "opensandbox/execd:v1.1.0"

[store]
type = "sqlite"
path = "{state / 'upstream.db'}"

[kubernetes]
kubeconfig_path = "{kubeconfig}"
namespace = "default"
workload_provider = "batchsandbox"
sandbox_create_poll_interval_seconds = 0.05

[ingress]
mode = "direct"
"""
    )


POOL = "bench"
# The SDK's default 200 ms between readiness polls would hide both servers behind the client.
POLL = timedelta(milliseconds=10)


def kube_api(kubeconfig: pathlib.Path) -> tuple[str, dict]:
    """The embedded API server's address and auth header, from the standalone kubeconfig."""
    text = kubeconfig.read_text()
    server = next(l.split("server:", 1)[1].strip() for l in text.splitlines() if "server:" in l)
    token = next(l.split("token:", 1)[1].strip() for l in text.splitlines() if "token:" in l)
    return server, {"Authorization": f"Bearer {token}"}


def warm_pool(kubeconfig: pathlib.Path, size: int, create: bool) -> None:
    """Creates (once) a Pool whose buffer holds `size` idle sandboxes and waits until it does.
    poolMax = size: the pool starts no replacement pod while a load runs (only once a sandbox is
    deleted), so the loads time the servers' allocation, not pod starts on the shared cores."""
    server, headers = kube_api(kubeconfig)
    url = f"{server}/apis/sandbox.opensandbox.io/v1alpha1/namespaces/default/pools"
    if create:
        pool = {
            "apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool", "metadata": {"name": POOL},
            "spec": {"template": {"spec": {"containers": [{"name": "sandbox", "image": "host",
                                                           "command": ["tail", "-f", "/dev/null"]}]}},
                     "capacitySpec": {"bufferMin": size, "bufferMax": size, "poolMin": 0, "poolMax": size},
                     "scaleStrategy": {"maxUnavailable": "100%"}},
        }
        httpx.post(url, json=pool, headers=headers, timeout=10).raise_for_status()
    deadline = time.time() + 180
    while time.time() < deadline:
        status = httpx.get(f"{url}/{POOL}", headers=headers, timeout=10).json().get("status") or {}
        if status.get("available", 0) >= size:
            return
        time.sleep(0.2)
    raise RuntimeError(f"pool {POOL} did not warm up to {size} idle sandboxes")


def one_create(config: ConnectionConfigSync) -> float:
    start = time.perf_counter()
    sandbox = SandboxSync.create(
        "host", connection_config=config, extensions={"poolRef": POOL},
        timeout=timedelta(minutes=5), ready_timeout=timedelta(seconds=60),
        health_check_polling_interval=POLL,
    )
    elapsed = time.perf_counter() - start
    sandbox.kill()
    return elapsed


def sdk_config(domain: str) -> ConnectionConfigSync:
    """The SDK connection of one client process, set up as a client that creates many sandboxes
    would: one transport shared by all of them (`transport`, which the SDK otherwise builds per
    sandbox, loading the CA bundle each time) and the SDK's create telemetry off
    (`disable_metrics`, which otherwise starts a thread and a new HTTP client per create).
    Both cost the client tens of milliseconds of CPU per create, on the cores the servers use."""
    settings = dict(domain=domain, api_key=API_KEY, request_timeout=timedelta(seconds=60), disable_metrics=True)
    return ConnectionConfigSync(**settings, transport=ConnectionConfigSync(**settings).new_owned_transport())


def timed_creates(create, creates: int, go: float | None) -> dict:
    """Runs `create` once untimed (this process's first-use costs: connection, lazy imports), waits
    until the monotonic time `go` so every client process starts together, then `creates` times:
    their latencies, this process's CPU time and the window they took."""
    create()
    if go is not None:
        time.sleep(max(0.0, go - time.monotonic()))
    cpu = time.process_time()
    start = time.monotonic()
    times = [create() for _ in range(creates)]
    return {"times": times, "cpu_s": time.process_time() - cpu, "start": start, "end": time.monotonic()}


def worker(domain: str, creates: int, go: float | None = None) -> dict:
    """One client process: its own SDK connection, `creates` SDK creates (each then killed) one
    after another."""
    config = sdk_config(domain)
    return timed_creates(lambda: one_create(config), creates, go)


def raw_worker(domain: str, creates: int, go: float | None = None) -> dict:
    """One client process: POST /v1/sandboxes (the server's own create, no SDK polling) on a
    kept-alive connection, then DELETE; `creates` times."""
    body = {"image": {"uri": "host"}, "timeout": 600, "resourceLimits": {"cpu": "1", "memory": "2Gi"},
            "entrypoint": ["tail", "-f", "/dev/null"], "extensions": {"poolRef": POOL}}
    with httpx.Client(base_url=f"http://{domain}/v1", headers={"OPEN-SANDBOX-API-KEY": API_KEY}, timeout=60) as c:
        def create() -> float:
            start = time.perf_counter()
            r = c.post("/sandboxes", json=body)
            elapsed = time.perf_counter() - start
            if r.status_code not in (200, 201, 202):
                raise RuntimeError(f"POST /v1/sandboxes answered {r.status_code}: {r.text[:300]}")
            c.delete(f"/sandboxes/{r.json()['id']}")
            return elapsed

        return timed_creates(create, creates, go)


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process so far, or (`children`) of its children it has reaped."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling, so far."""
    ticks = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def drive(domain: str, creates: int, concurrency: int, work=worker, server_pids: tuple[int, ...] = (),
          standalone_pid: int | None = None) -> dict:
    """`creates` creates from `concurrency` client processes (so the client's GIL is not the
    bottleneck); latency of each create and the rate over the window from the first timed create
    to the last. Each process makes one untimed create first and all start together, so the rate
    is the load's steady state, without the client processes' own start-up."""
    work(domain, 1)  # warm-up: first-use paths on the server
    per_worker = max(1, creates // concurrency)
    with concurrent.futures.ProcessPoolExecutor(concurrency) as pool:
        list(pool.map(time.sleep, [0.2] * concurrency))  # the processes exist (imports done)
        go = time.monotonic() + SETUP_SECONDS
        futures = [pool.submit(work, domain, per_worker, go) for _ in range(concurrency)]
        time.sleep(max(0.0, go - time.monotonic()))
        cpu0 = {p: cpu_seconds(p) for p in (*server_pids, standalone_pid) if p}
        pods0 = cpu_seconds(standalone_pid, children=True) if standalone_pid else 0.0
        machine0 = machine_busy_seconds()
        results = [f.result() for f in futures]
        machine = machine_busy_seconds() - machine0
        pods = cpu_seconds(standalone_pid, children=True) - pods0 if standalone_pid else None
        cpu = {p: cpu_seconds(p) - c for p, c in cpu0.items()}
    times = [t for r in results for t in r["times"]]
    window = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        # CPU of the process answering the SDK API, per create (for ours that process also runs
        # the API server, the manager and the node agent; for upstream it is the Python server alone).
        "server_cpu_ms_per_create": sum(cpu[p] for p in server_pids) * 1000 / len(times) if server_pids else None,
        "standalone_cpu_ms_per_create": cpu[standalone_pid] * 1000 / len(times) if standalone_pid else None,
        "client_cpu_ms_per_create": sum(r["cpu_s"] for r in results) * 1000 / len(times),
        # Pod processes (executors, entrypoints) the node agent reaped during the load: the pods
        # the creates' kills deleted.
        "reaped_pod_cpu_ms_per_create": pods * 1000 / len(times) if pods is not None else None,
        # Every core's busy time: clients, servers, pods, kernel, anything else running.
        "machine_cpu_ms_per_create": machine * 1000 / len(times),
        "cpu_cores_busy": machine / window,
        "late_starts": sum(r["start"] > go + 0.05 for r in results),
        "creates": len(times),
        "concurrency": concurrency,
        "p50_ms": percentile(times, 0.5) * 1000,
        "p99_ms": percentile(times, 0.99) * 1000,
        "creates_per_s": len(times) / window,
        "error": None,
    }


def native(exe: pathlib.Path, domain: str, creates: int, concurrency: int, wait_running: bool,
           server_pids: tuple[int, ...], standalone_pid: int) -> dict:
    """`creates` pooled creates from the native load generator; its JSON plus server CPU per create
    (that CPU includes the deletes after the clock stops, as the SDK loads include their kill)."""
    def argv(n: int) -> list[str]:
        return [str(exe / NATIVE), "--target", f"http://{domain}", "--api-key", API_KEY, "--pool", POOL,
                "--concurrency", str(concurrency), "--creates", str(n), *(["--wait-running"] if wait_running else [])]

    subprocess.run(argv(concurrency), capture_output=True, timeout=120)  # warm-up: first-use paths on the server
    pids = (*server_pids, standalone_pid)
    cpu0 = {p: cpu_seconds(p) for p in pids}
    proc = subprocess.run(argv(creates), capture_output=True, text=True, timeout=600)
    cpu = {p: cpu_seconds(p) - c for p, c in cpu0.items()}
    if proc.returncode != 0:
        return failed(f"{NATIVE} exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    result = json.loads(proc.stdout)
    done = result["creates"] or 1
    result["server_cpu_ms_per_create"] = sum(cpu[p] for p in server_pids) * 1000 / done
    result["standalone_cpu_ms_per_create"] = cpu[standalone_pid] * 1000 / done
    result["error"] = (f"{result['errors']} of {result['attempted']} creates failed, first: {result['first_error']}"
                       if result["errors"] else None)
    return result


def null_server_load(exe: pathlib.Path, creates: int, concurrency: int) -> dict:
    """The SDK load against a server that answers from memory: the most creates/s that load
    reaches on this machine, whatever the server does."""
    port = free_port()
    server = subprocess.Popen([str(exe / NATIVE), "--null-server", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 30, server)
        return drive(f"127.0.0.1:{port}", creates, concurrency, worker, server_pids=(server.pid,))
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        return failed(f"null server: {type(e).__name__}: {e}")
    finally:
        stop(server)


def ratio(report: dict, ours: str, upstream: str) -> float | None:
    a = (report.get(ours) or {}).get("creates_per_s")
    b = (report.get(upstream) or {}).get("creates_per_s")
    return a / b if a and b else None


def five_x_budget(report: dict) -> dict | None:
    """What 5 times upstream's creates/s under the SDK load leaves per create on this machine: every
    core busy for the whole window (more than any load here reached), divided by that rate, against
    what our run's client processes and pods alone used per create. What is left is all the server
    side may cost (SDK API, API server, manager, node agent); negative means 5x cannot be reached
    here even by a server that costs nothing, as long as each create starts and stops a pod and the
    clients share the cores."""
    ours, up = report.get("ours") or {}, report.get("upstream") or {}
    client, pod, rate = (ours.get("client_cpu_ms_per_create"), ours.get("reaped_pod_cpu_ms_per_create"),
                         up.get("creates_per_s"))
    if client is None or pod is None or not rate:
        return None
    cores = os.cpu_count() or 1
    budget = cores * 1000 / (5 * rate)
    return {"creates_per_s": 5 * rate, "cores": cores, "machine_cpu_ms_per_create": budget,
            "client_cpu_ms_per_create": client, "pod_cpu_ms_per_create": pod,
            "left_for_server_side_ms": budget - client - pod}


def failed(error: str) -> dict:
    return {"creates": 0, "p50_ms": None, "p99_ms": None, "creates_per_s": None, "error": error}


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serial-creates", type=int, default=16)
    parser.add_argument("--native-creates", type=int, default=128)
    parser.add_argument("--native-concurrency", type=int, default=16)
    parser.add_argument("--profile", default="release")
    args = parser.parse_args()
    work = REPO / "target" / "bench-upstream"
    shutil.rmtree(work, ignore_errors=True)
    state = work / "state"
    state.mkdir(parents=True)
    ours_port, upstream_port = free_port(), free_port()
    exe = REPO / "target" / args.profile
    env = dict(os.environ, OPENSANDBOX_EXECUTOR_BIN=str(exe / "opensandbox-executor"))
    ours = subprocess.Popen(
        [str(exe / "opensandbox"), "standalone", "--state-dir", str(state), "--listen", f"127.0.0.1:{ours_port}",
         "--api-key", API_KEY],
        env=env, stdout=subprocess.DEVNULL, stderr=open(work / "standalone.log", "w"),
    )
    upstream = None
    created_bootstrap, bootstrap_error = provide_bootstrap()
    report: dict = {"what": "official SDK 1.1.1 SandboxSync.create(poolRef) incl. wait-until-Running and execd "
                            "health check (polled every 10 ms), then kill, from a pool warmed to hold every "
                            "create; one shared SDK transport per client process, SDK telemetry off; both "
                            "servers on one standalone API server, manager and node agent",
                    "creates": args.creates, "concurrency": args.concurrency,
                    "serial_creates": args.serial_creates}
    try:
        wait_http(f"http://127.0.0.1:{ours_port}/health", 60, ours)
        # One pool size for every load: it holds a whole run (plus warm-up) so no load drains it.
        pool_size = max(args.creates + 2 * args.concurrency, args.native_creates + 2 * args.native_concurrency)
        report["pool_size"] = pool_size
        report["native_creates"] = args.native_creates
        report["native_concurrency"] = args.native_concurrency

        def loads(who: str, port: int, server_pids: tuple[int, ...]) -> None:
            """Every load against one server, the pool refilled before each."""
            domain = f"127.0.0.1:{port}"
            sdk_loads = (("", args.creates, args.concurrency, worker),
                         ("_serial", args.serial_creates, 1, worker),
                         ("_server_only", args.creates, args.concurrency, raw_worker))
            for suffix, creates, concurrency, work in sdk_loads:
                warm_pool(state / "kubeconfig", pool_size, create=False)
                report[who + suffix] = drive(domain, creates, concurrency, work,
                                             server_pids=server_pids, standalone_pid=ours.pid)
            for suffix, wait_running in (("_native", False), ("_native_running", True)):
                warm_pool(state / "kubeconfig", pool_size, create=False)
                report[who + suffix] = native(exe, domain, args.native_creates,
                                              args.native_concurrency, wait_running, server_pids, ours.pid)

        warm_pool(state / "kubeconfig", pool_size, create=True)
        loads("ours", ours_port, (ours.pid,))
        server = UPSTREAM_VENV / "bin" / "opensandbox-server"
        if not server.exists():
            report["upstream"] = failed(f"{server} is missing (pip install opensandbox-server into {UPSTREAM_VENV})")
        else:
            cfg = work / "upstream.toml"
            upstream_config(cfg, upstream_port, state / "kubeconfig", work)
            upstream = subprocess.Popen(
                [str(server), "--config", str(cfg)],
                stdout=subprocess.DEVNULL, stderr=open(work / "upstream.log", "w"),
            )
            try:
                wait_http(f"http://127.0.0.1:{upstream_port}/health", 60, upstream)
                loads("upstream", upstream_port, (upstream.pid,))
            except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
                tail = (work / "upstream.log").read_text(errors="replace")[-600:]
                report["upstream"] = failed(f"{type(e).__name__}: {e}; server log tail: {tail}")
    finally:
        stop(upstream)
        stop(ours)
        if created_bootstrap:
            BOOTSTRAP.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                BOOTSTRAP.parent.rmdir()
    # With both servers and their pods gone: nothing else competes for the cores, as nothing did
    # during the other loads (each started from a full, quiet pool).
    report["null_server"] = null_server_load(exe, args.creates, args.concurrency)
    report["bootstrap"] = bootstrap_error or f"{BOOTSTRAP} provided for upstream's entrypoint tasks"
    report["ours_vs_upstream_creates_ratio"] = ratio(report, "ours", "upstream")
    report["serial_creates_ratio"] = ratio(report, "ours_serial", "upstream_serial")
    report["server_only_creates_ratio"] = ratio(report, "ours_server_only", "upstream_server_only")
    report["ours_vs_upstream_native_creates_ratio"] = ratio(report, "ours_native", "upstream_native")
    report["native_running_creates_ratio"] = ratio(report, "ours_native_running", "upstream_native_running")
    report["sdk_load_ceiling_ratio"] = ratio(report, "null_server", "upstream")
    report["five_x_budget"] = five_x_budget(report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
