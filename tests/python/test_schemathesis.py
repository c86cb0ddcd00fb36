"""Schemathesis (PyPI) against the SDK lifecycle API of `opensandbox standalone`: every
operation of /openapi.json, with the API key, generated from the schema (examples, coverage,
fuzzing and stateful phases), bounded in examples per operation (it runs last: it may delete the default pool). No answer may be a 5xx and
the process must survive. Unauthenticated requests are refused with the 401 envelope.

SCHEMATHESIS_MAX_EXAMPLES raises the bound (the long variant)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from ports import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(__file__).parent / ".venv" / "bin"
API_KEY = "schemathesis-api-key"
HEADERS = {"OPEN-SANDBOX-API-KEY": API_KEY}


def _bin(env: str, name: str) -> str:
    path = os.environ.get(env) or str(REPO / "target" / "debug" / name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `cargo build --workspace --bins` (hack/test.sh does)")
    return path


def _rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def standalone():
    state = REPO / "target" / "e2e-schemathesis"
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    env = dict(os.environ, OPENSANDBOX_EXECUTOR_BIN=_bin("OPENSANDBOX_EXECUTOR_BIN", "opensandbox-executor"))
    log = open(state.parent / "e2e-schemathesis.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [_bin("OPENSANDBOX_BIN", "opensandbox"), "standalone", "--state-dir", str(state),
         "--listen", f"127.0.0.1:{port}", "--api-key", API_KEY],
        env=env, stdout=log, stderr=subprocess.STDOUT,
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
        pytest.fail("standalone did not come up")
    yield {"base": base, "proc": proc, "state": state}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _sandbox(base: str) -> str:
    """A real sandbox, so operations on `{sandboxId}` reach past the 404."""
    deadline = time.time() + 60
    while True:
        r = httpx.post(f"{base}/v1/sandboxes", headers=HEADERS, timeout=70, json={
            "image": {"uri": "host"}, "timeout": 600, "resourceLimits": {},
            "entrypoint": ["tail", "-f", "/dev/null"], "extensions": {"poolRef": "default"},
        })
        if r.status_code in (200, 201, 202):
            return r.json()["id"]
        assert time.time() < deadline, f"no sandbox: {r.status_code} {r.text}"
        time.sleep(1)


def test_no_request_without_the_key_gets_in(standalone):
    base = standalone["base"]
    for method, path in [("GET", "/v1/sandboxes"), ("POST", "/v1/sandboxes"), ("GET", "/v1/pools"),
                         ("DELETE", "/v1/pools/default"), ("GET", "/v1/snapshots")]:
        for headers in [{}, {"OPEN-SANDBOX-API-KEY": "wrong"}, {"OPEN-SANDBOX-API-KEY": API_KEY + "x"}]:
            r = httpx.request(method, f"{base}{path}", headers=headers, json={}, timeout=5)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["code"] in ("MISSING_API_KEY", "INVALID_API_KEY")
    assert httpx.get(f"{base}/v1/pools/default", headers=HEADERS, timeout=5).status_code == 200


def test_snapshots_are_refused_clearly_in_standalone(standalone):
    base = standalone["base"]
    sandbox_id = _sandbox(base)
    for body in [{}, {"name": "x"}, {"name": 5}, []]:
        r = httpx.post(f"{base}/v1/sandboxes/{sandbox_id}/snapshots", headers=HEADERS, json=body, timeout=10)
        assert r.status_code in (422, 501), r.text
        assert r.json()["code"] in ("SNAPSHOT::NOT_IMPLEMENTED", "INVALID_REQUEST"), r.text


def test_schemathesis_finds_no_server_error(standalone, tmp_path):
    base, proc = standalone["base"], standalone["proc"]
    sandbox_id = _sandbox(base)
    config = tmp_path / "schemathesis.toml"
    # Known identifiers let generated calls reach the handlers behind the lookups.
    # Port 44772 is the sandbox's execd, so the proxy reaches a live backend (a closed port
    # rightly answers 502).
    config.write_text(f'[parameters]\nsandboxId = "{sandbox_id}"\nport = 44772\n')
    report = tmp_path / "report.json"
    examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20")
    rss_before = _rss_kib(proc.pid)
    started = time.time()
    run = subprocess.run(
        [str(VENV_BIN / "schemathesis"), "--config-file", str(config), "run", f"{base}/openapi.json",
         "--checks", "not_a_server_error", "-H", f"OPEN-SANDBOX-API-KEY: {API_KEY}",
         "--max-examples", examples,
         # Standalone has no image registry: this one answers 501 by design (tested below).
         "--exclude-path", "/sandboxes/{sandboxId}/snapshots", "--seed", "20261128", "--workers", "1",
         "--request-timeout", "75", "--no-color", "--suppress-health-check", "all",
         "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    elapsed = time.time() - started
    assert report.exists(), run.stdout + run.stderr
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    failures = summary["failures"]
    errors = summary["errors"]
    alive = proc.poll() is None
    grown_mib = (_rss_kib(proc.pid) - rss_before) // 1024 if alive else -1
    print(f"FIGURES scenario=schemathesis requests={cases['generated']} tool_errors={len(errors)} "
          f"violations={cases['with_failures'] + (0 if alive else 1)} seconds={elapsed:.0f} rss_growth_mib={grown_mib}")
    assert alive, "standalone died under schemathesis"
    assert cases["generated"] > 100, summary
    # `errors` are schemathesis' own (generation) errors, not answers; failures are what counts.
    assert not failures and cases["with_failures"] == 0, run.stdout[-8000:]
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200

