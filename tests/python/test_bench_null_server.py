"""The null server of the side-by-side benchmark (`bench-sdk-create --null-server`): the official
SDK's create + kill must run against it exactly as against a real server, or the ceiling it
measures would be the ceiling of some other load."""

import os
import pathlib
import subprocess
import sys

import httpx
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "hack" / "bench"))
import upstream  # noqa: E402

PROFILE_DIR = REPO_ROOT / "target" / os.environ.get("BENCH_PROFILE", "debug")


@pytest.fixture
def null_server():
    exe = PROFILE_DIR / upstream.NATIVE
    if not exe.exists():
        pytest.fail(f"{exe} is missing: `cargo test` (or `cargo build --examples`) builds it")
    port = upstream.free_port()
    proc = subprocess.Popen([str(exe), "--null-server", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        upstream.wait_http(f"http://127.0.0.1:{port}/ping", 30, proc)
        yield f"127.0.0.1:{port}"
    finally:
        upstream.stop(proc)


def test_the_official_sdk_creates_and_kills_against_the_null_server(null_server):
    run = upstream.worker(null_server, 3)
    assert len(run["times"]) == 3 and all(t > 0 for t in run["times"])
    assert run["cpu_s"] > 0 and run["end"] > run["start"]


def test_every_create_gets_its_own_sandbox_and_other_routes_are_refused(null_server):
    base = f"http://{null_server}/v1"
    ids = {httpx.post(f"{base}/sandboxes", json={"image": {"uri": "host"}}).json()["id"] for _ in range(3)}
    assert len(ids) == 3
    endpoint = httpx.get(f"{base}/sandboxes/{ids.pop()}/endpoints/44772").json()["endpoint"]
    assert endpoint == null_server
    refused = httpx.get(f"{base}/sandboxes")
    assert refused.status_code == 404
    assert refused.json()["code"] == "NOT_FOUND" and "GET /v1/sandboxes" in refused.json()["message"]


def test_the_ceiling_load_reports_rate_and_client_cpu():
    result = upstream.null_server_load(PROFILE_DIR, creates=4, concurrency=2)
    assert result["error"] is None, result
    assert result["creates"] == 4
    assert result["creates_per_s"] > 0
    assert result["client_cpu_ms_per_create"] > 0
    assert result["server_cpu_ms_per_create"] >= 0
    assert result["late_starts"] == 0


def test_the_5x_budget_is_what_every_core_allows_minus_the_clients_and_pods():
    cores = os.cpu_count() or 1
    report = {"ours": {"client_cpu_ms_per_create": 7.5, "reaped_pod_cpu_ms_per_create": 5.0},
              "upstream": {"creates_per_s": 40.0}}
    budget = upstream.five_x_budget(report)
    assert budget["creates_per_s"] == 200.0 and budget["cores"] == cores
    assert budget["machine_cpu_ms_per_create"] == pytest.approx(cores * 5.0)
    assert budget["left_for_server_side_ms"] == pytest.approx(cores * 5.0 - 12.5)
    assert upstream.five_x_budget({"ours": report["ours"], "upstream": {"creates_per_s": None}}) is None
    assert upstream.five_x_budget({"upstream": {"creates_per_s": 40.0}}) is None
