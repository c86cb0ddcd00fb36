"""Time from `Sandbox.create` to the first command's output through the official SDK, against
`opensandbox standalone` (pooled and template sandboxes). Prints JSON and a readable table.

Run (after `cargo build --release --workspace --bins` and `hack/python-env.sh`):
    tests/python/.venv/bin/python hack/bench/first_command.py [--count 100]
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta

import httpx
from opensandbox.config.connection_sync import ConnectionConfigSync
from opensandbox.sync.sandbox import SandboxSync

REPO = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str, profile: str) -> str:
    path = REPO / "target" / profile / name
    if not path.exists():
        sys.exit(f"{path} is missing: cargo build --profile {profile} --workspace --bins")
    return str(path)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * p))]


def measure(config: ConnectionConfigSync, pooled: bool, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        sandbox = SandboxSync.create(
            "host", connection_config=config, extensions={"poolRef": "default"} if pooled else None,
            timeout=timedelta(minutes=5), ready_timeout=timedelta(seconds=60),
        )
        result = sandbox.commands.run("echo first")
        if "first" not in "".join(m.text for m in result.logs.stdout):
            raise RuntimeError("the first command printed nothing")
        times.append(time.perf_counter() - start)
        sandbox.kill()
    return times


API_KEY = "bench-first-command"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--profile", default="release")
    args = parser.parse_args()
    state = REPO / "target" / "bench-first-command"
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    env = dict(os.environ, OPENSANDBOX_EXECUTOR_BIN=binary("opensandbox-executor", args.profile))
    proc = subprocess.Popen(
        [binary("opensandbox", args.profile), "standalone", "--state-dir", str(state), "--listen", f"127.0.0.1:{port}",
         "--api-key", API_KEY],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                sys.exit("standalone did not start")
            time.sleep(0.1)
        time.sleep(2)  # let the default pool warm up
        config = ConnectionConfigSync(domain=f"127.0.0.1:{port}", api_key=API_KEY,
                                      request_timeout=timedelta(seconds=60))
        report = {}
        for label, pooled in (("pooled", True), ("template", False)):
            times = measure(config, pooled, args.count)
            report[label] = {
                "sandboxes": len(times),
                "p50_ms": percentile(times, 0.5) * 1000,
                "p99_ms": percentile(times, 0.99) * 1000,
                "mean_ms": statistics.mean(times) * 1000,
            }
        print(json.dumps(report, indent=2))
        print()
        print("| create -> first command output | sandboxes | p50 | p99 |")
        print("|---|---|---|---|")
        for label, r in report.items():
            print(f"| {label} | {r['sandboxes']} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
