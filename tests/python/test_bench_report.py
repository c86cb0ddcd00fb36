"""The benchmark report (hack/bench/report.py): medians of repeated runs, every required
latest.json key as a number, null plus a note for what a failed scenario could not measure."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "hack" / "bench"))
import report  # noqa: E402

MACHINE = {"cores": 2, "memory_gib": 23.5, "kernel": "6.1", "cpu_model": "test"}


def batch_run(scale: float) -> dict:
    """One bench-batch output, in the shape the program prints."""
    out = {}
    for ms in ("0ms", "5ms"):
        out[f"batch_100_latency_{ms}"] = {"create_to_ready_seconds_median": 0.02 * scale, "all": [0.02], "max_sandbox_writes": 2}
        out[f"batch_1000_latency_{ms}"] = {"create_to_ready_seconds_median": 0.2 * scale, "all": [0.2], "max_sandbox_writes": 3}
        out[f"pod_ready_to_sandbox_ready_latency_{ms}"] = {"samples": 30, "p50_ms": 2.0 * scale, "p99_ms": 9.0 * scale}
    return out


def sdk_run(p50: float) -> dict:
    return {"write_latency_ms": 0, **{f"concurrency_{c}": {"creates": 160, "p50_ms": p50, "p99_ms": 4 * p50, "creates_per_s": 1200.0}
                                      for c in (1, 16, 64)}}


def complete_scenarios() -> dict:
    batch = report.median_merge([batch_run(1.0), batch_run(3.0), batch_run(2.0)])
    return {
        "batch_0ms": {k: v for k, v in batch.items() if k.endswith("0ms")},
        "batch_5ms": {k: v for k, v in batch.items() if k.endswith("5ms")},
        "sdk_0ms": report.median_merge([sdk_run(8.0), sdk_run(12.0), sdk_run(9.0)]),
        "sdk_5ms": sdk_run(15.0),
        "pool_fill_0ms": {"fill_seconds_median": 0.08, "pod_writes_per_created_pod": 1.0},
        "pool_fill_5ms": {"fill_seconds_median": 0.2, "pod_writes_per_created_pod": 1.0},
        "memory_10000": {"manager_rss_mib": 55.0, "cache_bytes_per_pod": 900.0, "cold_start_to_synced_ms": 700.0,
                         "manager_cached_pods": 10000},
        "first_command": {"pooled": {"p50_ms": 30.0, "p99_ms": 60.0}},
        "upstream": {"ours": {"creates_per_s": 40.0, "p50_ms": 50.0}, "upstream": {"creates_per_s": 4.0, "p50_ms": 900.0,
                                                                                  "error": None},
                     "ours_vs_upstream_creates_ratio": 10.0,
                     "null_server": {"creates": 64, "creates_per_s": 60.0, "p50_ms": 30.0, "client_cpu_ms_per_create": 25.0,
                                     "error": None},
                     "sdk_load_ceiling_ratio": 15.0,
                     "five_x_budget": {"creates_per_s": 20.0, "cores": 2, "machine_cpu_ms_per_create": 100.0,
                                       "client_cpu_ms_per_create": 25.0, "pod_cpu_ms_per_create": 5.0,
                                       "left_for_server_side_ms": 70.0},
                     "ours_native": {"creates": 128, "creates_per_s": 600.0, "p50_ms": 20.0, "p99_ms": 45.0, "error": None},
                     "upstream_native": {"creates": 128, "creates_per_s": 40.0, "p50_ms": 380.0, "p99_ms": 700.0,
                                         "error": None},
                     "ours_vs_upstream_native_creates_ratio": 15.0},
    }


def test_median_merge_takes_each_figure_s_median_and_keeps_the_rest():
    merged = report.median_merge([{"a": 1, "b": {"c": 5.0}, "l": [1]}, {"a": 3, "b": {"c": 1.0}, "l": [2]},
                                  {"a": 2, "b": {"c": 3.0}, "l": [3]}])
    assert merged == {"a": 2, "b": {"c": 3.0}, "l": [1]}


def test_every_required_key_is_a_number_when_every_scenario_ran():
    latest = report.summarize(complete_scenarios(), {}, MACHINE, {"mode": "quick"})
    for key in report.REQUIRED_KEYS:
        assert isinstance(latest[key], (int, float)) and not isinstance(latest[key], bool), key
    assert latest["batch_100_ready_ms"] == 40.0  # median of 20, 60, 40 ms
    assert latest["sdk_create_p50_ms_c16"] == 9.0
    assert latest["writes_per_batch_1000"] == 3
    assert latest["ours_vs_upstream_creates_ratio"] == 10.0
    assert (latest["sdk_load_ceiling_creates_per_s"], latest["sdk_load_ceiling_ratio"]) == (60.0, 15.0)
    assert latest["ours_native_creates_per_s"] == 600.0
    assert latest["upstream_native_creates_per_s"] == 40.0
    assert latest["ours_vs_upstream_native_creates_ratio"] == 15.0
    assert (latest["ours_native_create_p50_ms"], latest["ours_native_create_p99_ms"]) == (20.0, 45.0)
    assert (latest["upstream_native_create_p50_ms"], latest["upstream_native_create_p99_ms"]) == (380.0, 700.0)
    assert latest["machine"] == MACHINE
    assert latest["notes"] == []
    json.dumps(latest)  # serialisable as written


def test_targets_say_met_or_missed():
    latest = report.summarize(complete_scenarios(), {}, MACHINE, {})
    met = {t["key"]: t["met"] for t in latest["targets"]}
    assert met["batch_100_ready_ms"] is True
    assert met["sdk_create_p50_ms_c16"] is True
    assert met["sdk_creates_per_s"] is True
    assert met["ours_vs_upstream_creates_ratio"] is True
    slow = complete_scenarios()
    slow["sdk_0ms"] = sdk_run(12.6)
    latest = report.summarize(slow, {}, MACHINE, {})
    assert {t["key"]: t["met"] for t in latest["targets"]}["sdk_create_p50_ms_c16"] is False
    assert "**no**" in report.markdown(latest)


def test_a_failed_scenario_leaves_null_keys_with_notes():
    scenarios = complete_scenarios()
    del scenarios["memory_10000"]
    scenarios["upstream"] = {"ours": {"creates_per_s": 40.0},
                             "upstream": {"creates_per_s": None, "error": "HTTP 500 on create"},
                             "ours_vs_upstream_creates_ratio": None}
    latest = report.summarize(scenarios, {"memory_10000": "exit 1: manager cache did not sync"}, MACHINE, {})
    for key in ("rss_mb_10k", "cache_bytes_per_pod_10k", "cache_sync_10k_ms", "upstream_creates_per_s",
                "ours_vs_upstream_creates_ratio"):
        assert latest[key] is None, key
        assert any(n.startswith(f"{key} is null") for n in latest["notes"]), key
    assert any("HTTP 500 on create" in n for n in latest["notes"])
    assert any("manager cache did not sync" in n for n in latest["notes"])
    md = report.markdown(latest)
    assert "n/a" in md and "Notes:" in md


def test_sdk_and_native_ratios_are_separate_targets():
    scenarios = complete_scenarios()
    scenarios["upstream"]["ours_vs_upstream_creates_ratio"] = 1.4
    latest = report.summarize(scenarios, {}, MACHINE, {})
    met = {t["key"]: t["met"] for t in latest["targets"]}
    assert met["ours_vs_upstream_creates_ratio"] is False
    assert met["ours_vs_upstream_native_creates_ratio"] is True
    md = report.markdown(latest)
    assert "native POST /v1/sandboxes" in md and "| 15.00 |" in md
    assert "what the clients alone allow here" in md


def test_the_sdk_load_ceiling_is_reported_next_to_the_ratio_it_bounds():
    scenarios = complete_scenarios()
    scenarios["upstream"]["ours_vs_upstream_creates_ratio"] = 2.0
    scenarios["upstream"]["sdk_load_ceiling_ratio"] = 2.5
    md = report.markdown(report.summarize(scenarios, {}, MACHINE, {}))
    assert "| null server (answers from memory) | 64 | 30.0 |" in md
    assert "| ceiling: null server / upstream | | | | 2.50 | | | | |" in md
    assert "(60.0 creates/s, 2.50x upstream)" in md
    scenarios["upstream"]["null_server"] = {"creates": 0, "creates_per_s": None, "error": "null server: exited"}
    latest = report.summarize(scenarios, {}, MACHINE, {})
    assert any("null server: exited" in n for n in latest["notes"])


def test_the_5x_budget_says_what_the_server_side_may_cost():
    scenarios = complete_scenarios()
    scenarios["upstream"]["ours"]["server_cpu_ms_per_create"] = 4.5
    latest = report.summarize(scenarios, {}, MACHINE, {})
    assert latest["sdk_load_5x_server_budget_ms"] == 70.0
    md = report.markdown(latest)
    assert "5x upstream is 20.0 creates/s: with all 2 cores busy, 100.00 ms of machine CPU per create" in md
    assert "leaving 70.00 ms for the whole server side (SDK API, API server, manager, node agent), ours used 4.50." in md
    scenarios["upstream"]["five_x_budget"].update(machine_cpu_ms_per_create=11.4, left_for_server_side_ms=-1.1)
    md = report.markdown(report.summarize(scenarios, {}, MACHINE, {}))
    assert "leaving -1.10 ms for the whole server side" in md
    assert "out of reach on this machine even for a server side that costs nothing" in md


def test_a_native_run_with_errors_is_noted():
    scenarios = complete_scenarios()
    scenarios["upstream"]["upstream_native"]["error"] = "3 of 128 creates failed, first: POST answered 500"
    latest = report.summarize(scenarios, {}, MACHINE, {})
    assert any("upstream native" in n and "POST answered 500" in n for n in latest["notes"])


def test_a_partial_run_keeps_the_previous_figures_of_what_it_did_not_run():
    previous = report.summarize(complete_scenarios(), {}, MACHINE, {"started_at": "2026-11-01T00:00:00+00:00",
                                                                     "commit": "abc123"})
    now = {"upstream": complete_scenarios()["upstream"]}
    now["upstream"]["upstream_native"]["creates_per_s"] = 50.0
    errors = {name: report.NOT_RUN for name in ("batch_0ms", "batch_5ms", "sdk_0ms", "memory_10000", "never_ran")}
    origins = report.carry_over(now, errors, json.loads(json.dumps(previous)))
    assert errors == {"never_ran": report.NOT_RUN}
    assert origins["sdk_0ms"] == "2026-11-01T00:00:00+00:00 (commit abc123)"
    note = report.carried_over_note(origins)
    assert note is not None and "abc123" in note and "sdk_0ms" in note
    latest = report.summarize(now, errors, MACHINE, {})
    assert latest["batch_100_ready_ms"] == 40.0  # carried over
    assert latest["upstream_native_creates_per_s"] == 50.0  # this run's figure
    # A second partial run still names the run the figures were measured in.
    latest["started_at"], latest["carried_over_from"] = "2026-11-02T00:00:00+00:00", origins
    again = {"upstream": now["upstream"]}
    origins = report.carry_over(again, {"sdk_0ms": report.NOT_RUN}, json.loads(json.dumps(latest)))
    assert origins == {"sdk_0ms": "2026-11-01T00:00:00+00:00 (commit abc123)"}
    assert report.carry_over({}, {"sdk_0ms": report.NOT_RUN}, None) == {}
    assert report.carried_over_note({}) is None


def test_a_strict_run_fails_on_missing_figures_and_our_errors_never_on_missed_targets():
    latest = report.summarize(complete_scenarios(), {}, MACHINE, {"profile": "quick"})
    assert report.incomplete(latest) == []
    assert "`quick` build profile" in report.markdown(latest)
    slow = complete_scenarios()
    slow["sdk_0ms"] = sdk_run(40.0)
    slow["upstream"]["upstream_native"]["error"] = "upstream answered 500"
    assert report.incomplete(report.summarize(slow, {}, MACHINE, {})) == []
    broken = complete_scenarios()
    del broken["memory_10000"]
    broken["upstream"]["ours_native"]["error"] = "2 of 128 creates failed"
    latest = report.summarize(broken, {"memory_10000": "exit 1"}, MACHINE, {})
    latest["notes"].append("plots failed: no display")
    problems = report.incomplete(latest)
    assert "rss_mb_10k is null" in problems
    assert "side by side, ours_native: 2 of 128 creates failed" in problems
    assert "plots failed: no display" in problems
