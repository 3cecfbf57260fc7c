"""Case 7: call churn on one worker — does it give back what it took?

``churn_calls`` calls, ``churn_concurrency`` at a time, each placed, accepted, connected (media
both ways), kept ``churn_hold_s`` and hung up, all on one SFU worker. After ``churn_warmup``
calls and again at the end, once the worker reports no room left (``stats`` control op), its
RSS is read: the end must be within 10 MB of the warmed-up figure (SPEC "Performance targets":
memory returns after 500 calls), with 0 rooms, every call set up, settled once and recorded.
A place refused with ``capacity`` (admission, SPEC "Under load") is retried like a tablet
would, and counted; the worker's heartbeat says why (loop lag, load) in the report.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from loadtest.faults.case import CaseResult, Knobs, WorkerWatch, add_checks, wait_for
from loadtest.faults.checks import nothing_lost
from loadtest.faults.cluster import Cluster, ClusterSpec
from loadtest.harness import Call, hang_up, setup_call
from loadtest.processes import rss_bytes

RSS_SLACK_BYTES = 10_000_000  # SPEC: "within 10 MB"
REFUSED_FOR_S = 30.0  # a slot refused with capacity this long counts the call as failed


@dataclass
class Churned:
    done: list[str] = field(default_factory=list)  # call ids (set up or not)
    failed: list[str] = field(default_factory=list)
    refused: int = 0  # call.place answered capacity (admission): retried


def _refused(call: Call) -> bool:
    return bool(call.error) and "call.place: capacity" in str(call.error)


async def _churn(cluster: Cluster, knobs: Knobs, count: int, out: Churned) -> None:
    """``count`` calls through ``churn_concurrency`` resident/family slots. A place refused
    with ``capacity`` is retried, as a tablet would, for up to ``REFUSED_FOR_S``."""
    left = [count]

    async def slot(index: int) -> None:
        while left[0] > 0:
            left[0] -= 1
            refused_since = time.monotonic()
            while True:
                call = await setup_call(cluster, index, watch=False)
                if not _refused(call) or time.monotonic() - refused_since > REFUSED_FOR_S:
                    break
                out.refused += 1
                await call.close()
                await asyncio.sleep(0.2)  # the tablet's back-off before it tries again
            try:
                if call.call_id:
                    out.done.append(call.call_id)
                if call.ok:
                    await asyncio.sleep(knobs.churn_hold_s)  # the call's length
                    await hang_up(call)
                else:
                    out.failed.append(f"R{index}: {call.error}")
            finally:
                await call.close()

    await asyncio.gather(*(slot(i) for i in range(knobs.churn_concurrency)))


async def _settled_worker(cluster: Cluster, worker: str, timeout_s: float = 30.0) -> dict[str, int]:
    """The worker's ``stats`` once it holds no room (or as they are at the deadline)."""
    last: dict[str, int] = {}

    async def empty() -> bool:
        stats = await cluster.control.stats(worker)
        last.update(calls=int(stats["calls"]), rooms=len(stats["rooms"]))
        return last["rooms"] == 0 and last["calls"] == 0

    await wait_for(empty, timeout_s, interval_s=0.25)
    return last


async def churn(knobs: Knobs, result: CaseResult) -> None:
    spec = ClusterSpec(parties=knobs.churn_concurrency, keep_dir=knobs.keep_dir)
    async with Cluster(spec) as cluster:
        [worker] = cluster.worker_ids
        pid = cluster.worker_pid(worker)
        out = Churned()
        start_rss = rss_bytes(pid)
        started = time.monotonic()
        await _churn(cluster, knobs, knobs.churn_warmup, out)
        warm = await _settled_worker(cluster, worker)
        warm_rss = rss_bytes(pid)
        async with WorkerWatch(cluster) as watch:
            await _churn(cluster, knobs, knobs.churn_calls - knobs.churn_warmup, out)
        end = await _settled_worker(cluster, worker)
        end_rss = rss_bytes(pid)
        took = time.monotonic() - started
        growth = end_rss - warm_rss
        result.saw(
            f"{len(out.done)} calls in {took:.0f} s ({knobs.churn_concurrency} at a time, "
            f"{len(out.failed)} failed, {out.refused} places refused with capacity and retried; "
            f"{watch.summary()}); worker RSS {start_rss >> 20} MiB at start, "
            f"{warm_rss >> 20} MiB after {knobs.churn_warmup} calls, {end_rss >> 20} MiB at the end "
            f"({growth / 2**20:+.1f} MiB); rooms left: {end.get('rooms')}"
        )
        result.details |= {"rss": [start_rss, warm_rss, end_rss], "warm": warm, "end": end}
        result.expect(not out.failed, f"{len(out.failed)} calls failed: {out.failed[:3]}")
        result.expect(end.get("rooms") == 0 and end.get("calls") == 0, f"worker left {end}")
        result.expect(
            growth <= RSS_SLACK_BYTES,
            f"worker RSS grew {growth / 2**20:.1f} MiB over {knobs.churn_calls - knobs.churn_warmup} "
            f"calls (limit 10 MB)",
        )
        losses = await nothing_lost(cluster, out.done)
        add_checks(result, losses, "ledger invariant, each call settled once, recordings")
        result.saw(f"{losses.verified}/{len(out.done)} recordings verified")
