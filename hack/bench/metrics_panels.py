"""Plots the Grafana dashboard's key panels from a short workload against `opensandbox
standalone`: pool fill, allocation latency p50/p99, API latency p50/p99 and API errors, from
`/metrics` scraped every half second. Writes metrics-panels.png (and the last scrape) into the
output folder.

Run (after `cargo build --release --workspace --bins` and `hack/python-env.sh`):
    tests/python/.venv/bin/python hack/bench/metrics_panels.py [--out bench-results] [--sandboxes 24]
"""

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
API_KEY = "bench-metrics-panels"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str, profile: str) -> str:
    path = REPO / "target" / profile / name
    if not path.exists():
        sys.exit(f"{path} is missing: cargo build --profile {profile} --workspace --bins")
    return str(path)


def wait_ok(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer")


def parse(text: str) -> dict:
    """Sample name -> list of (labels, value)."""
    out: dict = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(scrape: dict, name: str, **labels) -> float:
    return sum(v for l, v in scrape.get(name, []) if all(l.get(k) == w for k, w in labels.items()))


def quantile(q: float, before: dict, after: dict, name: str, **labels) -> float | None:
    """histogram_quantile over the increase of `name`'s buckets between two scrapes."""
    buckets: dict = {}
    for scrape, sign in ((after, 1), (before, -1)):
        for l, v in scrape.get(f"{name}_bucket", []):
            if all(l.get(k) == w for k, w in labels.items()):
                le = float(l["le"])
                buckets[le] = buckets.get(le, 0.0) + sign * v
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return None


def workload(base: str, sandboxes: int, settle: float) -> None:
    """Pooled creates in waves (beyond the idle buffer, so some wait for new pods), a few
    malformed requests, then deletes."""
    client = httpx.Client(base_url=base, timeout=120, headers={"OPEN-SANDBOX-API-KEY": API_KEY})
    body = {"extensions": {"poolRef": "default"}, "timeout": 600, "image": {"uri": "busybox:1.36"},
            "entrypoint": ["sleep", "infinity"], "resourceLimits": {"cpu": "100m", "memory": "64Mi"}}
    ids = []

    def create(_):
        r = client.post("/v1/sandboxes", json=body)
        return r.json().get("id") if r.status_code == 202 else None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for wave in range(4):
            ids += [i for i in pool.map(create, range(sandboxes // 4)) if i]
            client.post("/v1/sandboxes", json={"image": 42})  # a 422, for the errors panel
            client.get("/v1/sandboxes/does-not-exist")  # a 404
            time.sleep(2)
        codes = list(pool.map(lambda i: client.delete(f"/v1/sandboxes/{i}").status_code, ids))
    print(f"created {len(ids)} sandboxes; deletes answered {sorted(set(codes))}")
    time.sleep(settle)  # the pool takes the pods back and refills its buffer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--sandboxes", type=int, default=24)
    parser.add_argument("--settle-seconds", type=float, default=15.0,
                        help="how long the panels keep recording after the deletes")
    parser.add_argument("--profile", default="release")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = REPO / "target" / "bench-metrics-panels"
    shutil.rmtree(state, ignore_errors=True)
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, OPENSANDBOX_EXECUTOR_BIN=binary("opensandbox-executor", args.profile))
    proc = subprocess.Popen(
        [binary("opensandbox", args.profile), "standalone", "--state-dir", str(state),
         "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
         "--api-key", API_KEY],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    scrapes: list[tuple[float, dict]] = []
    done = threading.Event()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        wait_ok(f"http://127.0.0.1:{port}/health", 60)
        wait_ok(metrics_url, 10)
        start = time.time()

        def scraper():
            while not done.is_set():
                scrapes.append((time.time() - start, parse(httpx.get(metrics_url, timeout=5).text)))
                time.sleep(0.5)

        t = threading.Thread(target=scraper)
        t.start()
        time.sleep(3)  # the default pool warms up
        workload(f"http://127.0.0.1:{port}", args.sandboxes, args.settle_seconds)
        done.set()
        t.join()
        (out / "metrics-last-scrape.txt").write_text(httpx.get(metrics_url, timeout=5).text)
    finally:
        done.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    plot(scrapes, out / "metrics-panels.png")
    print(out / "metrics-panels.png")


def plot(scrapes: list, path: pathlib.Path) -> None:
    ts = [t for t, _ in scrapes]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    ax = axes[0][0]
    for state in ("idle", "allocated", "pending", "terminating"):
        ax.plot(ts, [total(s, "opensandbox_pool_pods", pool="default", state=state) for _, s in scrapes], label=state)
    ax.plot(ts, [total(s, "opensandbox_pool_buffer_target", pool="default", bound="max") for _, s in scrapes],
            "k--", label="buffer max")
    ax.set_title("Pool fill (pods by state)")
    # Rate-style panels use a sliding window of 4 scrapes (2 s).
    window = 4
    pairs = [(scrapes[i][0], scrapes[max(0, i - window)][1], scrapes[i][1]) for i in range(1, len(scrapes))]

    def series(q, name, **labels):
        xs, ys = [], []
        for t, before, after in pairs:
            v = quantile(q, before, after, name, **labels)
            if v is not None:
                xs.append(t)
                ys.append(v * 1000)
        return xs, ys

    ax = axes[0][1]
    for q in (0.5, 0.99):
        ax.plot(*series(q, "opensandbox_allocation_duration_seconds", pool="default"), "o-", ms=3, label=f"create p{int(q * 100)}")
        ax.plot(*series(q, "opensandbox_batchsandbox_ready_duration_seconds", pool="default"), "x--", ms=3,
                label=f"created to Ready p{int(q * 100)}")
    ax.set_title("Allocation latency (ms)")
    ax = axes[1][0]
    for q in (0.5, 0.99):
        ax.plot(*series(q, "opensandbox_api_request_duration_seconds", route="/v1/sandboxes", method="POST"), "o-", ms=3,
                label=f"POST /v1/sandboxes p{int(q * 100)}")
        ax.plot(*series(q, "opensandbox_api_request_duration_seconds", route="/v1/sandboxes/:id", method="DELETE"), "x--",
                ms=3, label=f"DELETE /v1/sandboxes/:id p{int(q * 100)}")
    ax.set_title("API latency (ms)")
    ax = axes[1][1]

    def errors(s, cls):
        return sum(v for l, v in s.get("opensandbox_api_requests_total", []) if l.get("code", "").startswith(cls))

    for cls in ("4", "5"):
        ax.step(ts, [errors(s, cls) for _, s in scrapes], where="post", label=f"{cls}xx responses (total)")
    ax.step(ts, [total(s, "opensandbox_allocation_failures_total") for _, s in scrapes], where="post",
            label="allocation failures (total)")
    ax.set_title("Errors")
    for a in axes.flat:
        a.set_xlabel("seconds")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle("OpenSandbox controller: dashboard panels from a standalone run")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
