"""PNG plots of a benchmark run: `python plots.py latest.json OUT_DIR` (needs matplotlib)."""

import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def dig(tree, *path):
    for p in path:
        if not isinstance(tree, dict) or p not in tree:
            return None
        tree = tree[p]
    return tree


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def sdk_latency(s: dict, out: pathlib.Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    levels = [1, 16, 64]
    for ms, style in (("0ms", "-"), ("5ms", "--")):
        for q, marker in (("p50_ms", "o"), ("p99_ms", "^")):
            ax.plot(levels, [num(dig(s, f"sdk_{ms}", f"concurrency_{c}", q)) for c in levels], style,
                    marker=marker, label=f"{q[:3]}, {ms} per write")
    ax.axhline(10, color="grey", lw=0.8, ls=":")
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("ms")
    ax.set_title("SDK API pooled create (POST /v1/sandboxes -> 202)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sdk_create_latency.png", dpi=80)


def batches(s: dict, out: pathlib.Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = ["batch 100", "batch 1,000", "pool fill 300"]
    width = 0.38
    for i, ms in enumerate(("0ms", "5ms")):
        values = [
            num(dig(s, f"batch_{ms}", f"batch_100_latency_{ms}", "create_to_ready_seconds_median")) * 1000,
            num(dig(s, f"batch_{ms}", f"batch_1000_latency_{ms}", "create_to_ready_seconds_median")) * 1000,
            num(dig(s, f"pool_fill_{ms}", "fill_seconds_median")) * 1000,
        ]
        ax.bar([x + i * width for x in range(3)], values, width, label=f"{ms} per API write")
    ax.set_xticks([x + width / 2 for x in range(3)], labels)
    ax.set_ylabel("ms to Ready")
    ax.set_title("Warm-pool batches and pool fill")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "batch_and_fill.png", dpi=80)


def memory(s: dict, out: pathlib.Path) -> None:
    rows = sorted((int(k.split("_")[1]), v) for k, v in s.items() if k.startswith("memory_"))
    if not rows:
        return
    pods = [n for n, _ in rows]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax, key, title in zip(axes, ("manager_rss_mib", "cache_bytes_per_pod", "cold_start_to_synced_ms"),
                              ("RSS (MiB)", "cache bytes per pod", "start -> synced (ms)")):
        ax.plot(pods, [num(v.get(key)) for _, v in rows], marker="o")
        ax.set_xscale("log")
        ax.set_xlabel("cached pods")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "manager_memory.png", dpi=80)


def upstream(s: dict, out: pathlib.Path) -> None:
    up = s.get("upstream") or {}
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    who = ["ours", "upstream"]
    axes[0].bar(who, [num(dig(up, w, "creates_per_s")) for w in who], color=["tab:blue", "tab:orange"])
    axes[0].set_title("official SDK creates/s", fontsize=9)
    axes[1].bar(who, [num(dig(up, w, "p50_ms")) for w in who], color=["tab:blue", "tab:orange"])
    axes[1].set_title("official SDK create p50 (ms)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "ours_vs_upstream.png", dpi=80)


def main() -> None:
    latest = json.loads(pathlib.Path(sys.argv[1]).read_text())
    out = pathlib.Path(sys.argv[2])
    s = latest["scenarios"]
    sdk_latency(s, out)
    batches(s, out)
    memory(s, out)
    upstream(s, out)


if __name__ == "__main__":
    main()
