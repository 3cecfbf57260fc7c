"""``GET /metrics`` of a node: its own metrics and its live SFU workers', merged and valid."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from billing_hooks.outbox import Outbox
from core.directory import Directory
from core.embedded_redis import _free_port
from media.control import SfuControl, WorkerStatus
from media.metrics import metrics_key
from media.redis_keys import ALIVE, WORKER_CALLS, WORKERS
from signaling.metrics import REDIS_PART_TIMEOUT_S, NodeMetrics
from tests.conftest import Clients, Node, accepted, media_between, start_sfu_worker
from tests.system.signaling.test_calls import place_error
from tests.waiting import eventually

Families = dict[str, Metric]


async def scrape(node: Node) -> Families:
    """The node's ``/metrics``, parsed; fails on a family declared twice."""
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body = await response.text()
    declared = re.findall(r"^# TYPE (\S+) ", body, flags=re.MULTILINE)
    assert len(declared) == len(set(declared)), sorted(d for d in declared if declared.count(d) > 1)
    families = list(text_string_to_metric_families(body))
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    return {f.name: f for f in families}


def value(families: Families, sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels`` (0 if none)."""
    family = families.get(sample.removesuffix("_total"))
    if family is None:
        return 0.0
    wanted = labels.items()
    return sum(s.value for s in family.samples if s.name == sample and wanted <= s.labels.items())


def workers_in(families: Families) -> set[str]:
    return {
        s.labels["worker"]
        for f in families.values()
        for s in f.samples
        if f.name.startswith("visitation_sfu_") and "worker" in s.labels
    }


async def scrape_until(
    node: Node, predicate: Callable[[Families], bool], within: float = 15.0
) -> Families:
    """Scrape until ``predicate`` holds: workers publish once a second (nothing to await)."""
    families: Families = {}

    async def shows() -> bool:
        nonlocal families
        families = await scrape(node)
        return predicate(families)

    def shown() -> str:
        values = {n: [(s.labels, s.value) for s in f.samples] for n, f in families.items()}
        return f"the expected values in the metrics: {values}"

    await eventually(shows, shown, within_s=within, interval_s=0.2)
    return families


async def test_a_live_call_shows_in_the_workers_metrics_on_the_node(
    clients: Clients, node: Node, sfu_worker: str
) -> None:
    pair = await accepted(clients)
    async with media_between(pair):
        calls_open = "visitation_sfu_calls_open"
        received = "visitation_sfu_rtp_packets_received_total"
        forwarded = "visitation_sfu_rtp_packets_forwarded_total"
        first = await scrape_until(
            node,
            lambda m: (
                value(m, calls_open, worker=sfu_worker) >= 1
                and value(m, forwarded, worker=sfu_worker, kind="video") > 0
            ),
        )
        counters = [(name, kind) for name in (received, forwarded) for kind in ("audio", "video")]
        before = {
            (name, kind): value(first, name, worker=sfu_worker, kind=kind)
            for name, kind in counters
        }
        # Each packet counter keeps counting while media flows (compared with its own earlier
        # value: earlier tests' long calls leave video's totals far above audio's).
        await scrape_until(
            node,
            lambda m: all(
                value(m, name, worker=sfu_worker, kind=kind) > before[name, kind]
                for name, kind in counters
            ),
        )
        now = await scrape(node)
    assert sfu_worker in workers_in(now)
    for family in now.values():
        if family.name.startswith("visitation_sfu_") and family.name != (
            "visitation_sfu_workers_reporting"
        ):
            assert all("worker" in s.labels for s in family.samples), family.name
    assert value(now, "visitation_sfu_workers_reporting") >= 1
    assert value(now, "process_cpu_seconds_total", worker=sfu_worker) > 0
    for name in ("lost", "retransmitted"):
        assert f"visitation_sfu_rtp_packets_{name}" in now
    assert "visitation_sfu_event_loop_lag_seconds" in now
    # The node's own: this test's call, its clients, its loop, the outbox.
    assert value(now, "visitation_calls_live", state="connected") == 1
    assert value(now, "visitation_calls_live", state="ringing") == 0
    assert value(now, "visitation_socketio_connections", role="tablet") >= 1
    assert value(now, "visitation_socketio_connections", role="family") >= 1
    assert value(now, "visitation_node_event_loop_lag_seconds") >= 0
    assert value(now, "visitation_billing_outbox_depth", queue="pending") >= 0
    assert now["visitation_timer_lateness_seconds"].type == "histogram"
    assert value(now, "visitation_socket_events_total", event="call.accept", result="ok") >= 1


async def test_call_place_refusals_are_counted_by_reason(
    clients: Clients, node: Node, redis: Redis
) -> None:
    refusals = "visitation_admission_refusals_total"
    before = await scrape(node)
    assert await place_error(clients, "R3", "F1") == "outside_hours"

    # Every live worker full (as in test_calls): call.place answers capacity.
    def status() -> str:
        fields = {"calls": 1, "load": 0.1, "pid": 1, "started_at": 0.0, "max_calls": 1}
        return WorkerStatus.model_validate(fields).model_dump_json()

    others = await SfuControl(redis).live_workers()
    fillers = {w: [f"filler-{w}-{i}" for i in range(st.max_calls)] for w, st in others.items()}
    for worker, ids in fillers.items():
        await redis.sadd(WORKER_CALLS(worker), *ids)
    await redis.sadd(WORKERS(), "full-w")
    await redis.sadd(WORKER_CALLS("full-w"), "C-a")
    await redis.set(ALIVE("full-w"), status(), px=60_000)
    try:
        assert await place_error(clients, "R1", "F1") == "capacity"
        after = await scrape(node)
    finally:
        await redis.delete(ALIVE("full-w"), WORKER_CALLS("full-w"))
        await redis.srem(WORKERS(), "full-w")
        for worker, ids in fillers.items():
            await redis.srem(WORKER_CALLS(worker), *ids)
    for reason in ("outside_hours", "capacity"):
        assert value(after, refusals, reason=reason) == value(before, refusals, reason=reason) + 1
    assert "full-w" not in workers_in(after)  # registered, but publishes no metrics


async def test_a_dead_workers_metrics_disappear_when_its_key_expires(
    node: Node, redis: Redis, redis_url: str, recordings_dir: Path
) -> None:
    async with start_sfu_worker(redis_url, recordings_dir, "metrics-dead") as worker:
        await scrape_until(node, lambda m: worker in workers_in(m))
        status = json.loads(await redis.get(ALIVE(worker)) or "{}")
        os.kill(int(status["pid"]), signal.SIGKILL)
        killed = time.monotonic()
        await scrape_until(node, lambda m: worker not in workers_in(m), within=10)

        async def expired() -> bool:  # with the alive TTL (3 s)
            return not await redis.exists(metrics_key(worker))

        await eventually(expired, "the dead worker's metrics key expired", within_s=10)
        assert time.monotonic() - killed < 10


async def test_without_redis_the_node_still_serves_its_own_metrics() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{_free_port()}", socket_connect_timeout=0.5)
    metrics = NodeMetrics(
        unreachable,
        roles=lambda: ["tablet", "tablet"],
        facility_ids=Directory(unreachable).all_facility_ids,
        outboxes=[Outbox(unreachable)],
    )
    metrics.start()
    try:
        started = time.monotonic()
        families = {
            f.name: f for f in text_string_to_metric_families((await metrics.exposition()).decode())
        }
        assert time.monotonic() - started < 3 * REDIS_PART_TIMEOUT_S + 1
    finally:
        metrics.stop()
        await unreachable.aclose()
    assert value(families, "visitation_socketio_connections", role="tablet") == 2
    assert "visitation_node_event_loop_lag_seconds" in families
    assert (
        "visitation_calls_live" not in families
        and "visitation_sfu_workers_reporting" not in families
    )
