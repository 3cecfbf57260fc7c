"""The benchmark harness end to end, tiny: 2 calls x 3 s through one SFU worker, no naive phase.

Checks that the numbers exist and are sane, not that targets are met (timed tests would be
flaky; the targets are the benchmark's job).
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

from loadtest.bench import parse_cli, run
from loadtest.measure import GcPauses
from loadtest.report import median_runs, table


async def test_bench_smoke_two_calls(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cores = os.sched_getaffinity(0)
    args = parse_cli(
        ["--calls", "2", "--sweep", "1", "--seconds", "3", "--warmup", "1", "--skip-naive"]
    )
    results = await run(args)
    assert os.sched_getaffinity(0) == cores  # pinned for the phases, given back after
    out.write_text(json.dumps(results))
    results = json.loads(out.read_text())  # JSON-serializable, all of it

    sfu = results["phases"]["sfu"]
    assert "naive" not in results["phases"] and results["cpu_ratio"] is None
    assert (sfu["calls_ok"], sfu["calls_failed"]) == (2, 0), sfu["errors"]
    assert sfu["frames_sent"] > 0 and sfu["frames_received"] > 0
    assert 0 <= sfu["loss_pct"] < 50
    assert 0 < sfu["worker_cpu_cores"] < 4
    assert sfu["transcoders"] == 0
    assert sfu["bench_gc_longest_pause_ms"] >= 0  # the clients' own collector, measured
    assert sfu["forwarding_delay"]["count"] > 0
    assert sfu["forwarding_delay"]["p50_ms"] <= sfu["forwarding_delay"]["p95_ms"]
    assert 0 < sfu["accept_to_connected"]["p50_ms"] <= sfu["accept_to_connected"]["p95_ms"]
    assert sfu["monitor_first_video"]["p95_ms"] is not None
    assert [c["index"] for c in sfu["per_call"]] == [0, 1]
    assert all(c["frames_received"] > 0 for c in sfu["per_call"])
    verdicts = {t["target"]: t["verdict"] for t in results["targets"]}
    assert verdicts["concurrent calls on one worker"] == "N/A"  # only 2 calls asked for
    assert verdicts["CPU per call vs naive aiortc"] == "N/A"
    assert [p["calls_requested"] for p in results["sweep"]] == [1, 2]
    assert sfu["content"]["checked"] > 0 and sfu["content"]["wrong"] == 0  # right parties
    assert sfu["recording"]["calls"] == 2 and sfu["recording"]["frames"] > 0
    assert sfu["recording"]["dropped_packets"] == 0
    # Reported for both sides (what their own UDP sockets dropped in the window).
    assert sfu["clients"]["socket_drops"] >= 0 and sfu["worker_socket_drops"] >= 0
    if len(cores) > 1:
        assert sfu["pinned"]["worker"] and sfu["pinned"]["clients"]
    assert verdicts["load generator not the bottleneck"] in ("PASS", "FAIL")
    idle = results["machine"]["idle"]
    assert isinstance(idle["wake_latency_limit_us"], int)  # what the kernel has in force
    printed = table(results, per_call=True)
    assert "sfu" in printed and "SPEC performance targets" in printed
    assert "Idle CPUs: " in printed
    assert "datagrams dropped at full UDP receive buffers: clients " in printed


def test_repeated_runs_count_by_their_median() -> None:
    runs = [{"run": i, "worker_cpu_per_call_pct": cpu} for i, cpu in enumerate([2.0, 1.0, 3.0])]
    chosen = median_runs(runs)
    assert chosen["run"] == 0 and chosen["cpu_per_call_runs"] == [2.0, 1.0, 3.0]
    assert median_runs(runs[:2])["run"] == 1  # an even count: the lower middle run
    assert "cpu_per_call_runs" not in runs[0]  # the runs themselves are left as they were


def test_bad_repeat_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_cli(["--repeat", "0"])


def test_the_clients_collector_pauses_are_measured() -> None:
    garbage = []
    with GcPauses() as pauses:
        for _ in range(20_000):
            node: list[object] = []
            node.append(node)  # a cycle: only the collector frees it
            garbage.append(node)
        garbage.clear()
        gc.collect()
    assert pauses.longest_s > 0
    assert pauses._callback not in gc.callbacks  # no longer watching once left
