"""An SFU worker's metrics: sampled on its loop, published by its heartbeat into Redis."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from media.control import SfuControl, WorkerStatus
from media.liveness import HeartbeatThread, LoopLag
from media.metrics import WorkerMetrics
from media.pool import WorkerPool
from media.quality import RoomQuality
from media.redis_keys import ALIVE, METRICS, WORKERS
from tests.system.media.test_worker import FAST, raises
from tests.waiting import eventually


def parse(raw: bytes) -> dict[str, Metric]:
    families = list(text_string_to_metric_families(raw.decode()))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), names
    return {f.name: f for f in families}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    """The one sample named ``sample`` whose labels include ``labels``."""
    family = families[sample.removesuffix("_total")]
    [found] = [
        s.value for s in family.samples if s.name == sample and labels.items() <= s.labels.items()
    ]
    return found


# ---------------------------------------------------------------- heartbeat publishing


async def test_the_heartbeat_publishes_metrics_with_the_alive_ttl_and_withdraws_them(
    redis_url: str, redis: Redis
) -> None:
    fail = False

    def exposition() -> bytes:
        if fail:
            raise RuntimeError("broken collector")
        return b"# TYPE x gauge\nx 1.0\n"

    def status() -> WorkerStatus:
        return WorkerStatus(calls=0, load=0.0, pid=os.getpid(), started_at=time.time())

    beat = HeartbeatThread(
        redis_url,
        "metrics-1",
        status,
        interval_s=0.1,
        alive_ttl_ms=800,
        on_fenced=lambda: None,
        metrics=exposition,
    )
    try:
        await asyncio.to_thread(beat.beat)
        assert await redis.get(METRICS("metrics-1")) == b"# TYPE x gauge\nx 1.0\n"
        assert 0 < await redis.pttl(METRICS("metrics-1")) <= 800
        # Broken metrics never cost a heartbeat: the worker stays alive, its metrics lapse.
        fail = True
        await redis.delete(METRICS("metrics-1"), ALIVE("metrics-1"))
        await asyncio.to_thread(beat.beat)
        assert await redis.exists(ALIVE("metrics-1"))
        assert not await redis.exists(METRICS("metrics-1"))
        fail = False
        await asyncio.to_thread(beat.beat)
        assert await redis.exists(METRICS("metrics-1"))
    finally:
        await asyncio.to_thread(beat.stop)
    assert not await redis.exists(METRICS("metrics-1"))  # a clean stop withdraws them
    await redis.delete(ALIVE("metrics-1"))
    await redis.srem(WORKERS(), "metrics-1")


async def test_recent_loop_lag_is_seen_by_every_reader_without_resetting() -> None:
    lag = LoopLag(asyncio.get_running_loop())
    lag.start()
    try:
        time.sleep(0.5)  # noqa: ASYNC251  # the loop is blocked (the scenario itself)
        assert lag.recent_max_s() >= 0.3  # late right now, before any tick could run
        await eventually(lambda: lag.max_s >= 0.3, "the late tick ran")
        assert lag.recent_max_s() >= 0.3 and lag.recent_max_s() >= 0.3  # still, for any reader
        assert lag.take_max() >= 0.3  # admission's own reading is untouched
    finally:
        lag.stop()


# ---------------------------------------------------------------- accounting


@dataclass(eq=False)
class FakeReceiver:
    nacks_sent: int = 0
    plis_sent: int = 0
    _streams: dict[int, Any] = field(default_factory=dict)
    _rtx_ssrc: dict[int, int] = field(default_factory=dict)


@dataclass(eq=False)
class FakeSender:
    packets_sent: int = 0
    retransmitted: int = 0
    nacks_received: int = 0
    keyframe_requests: int = 0


@dataclass(eq=False)
class FakeSubscription:
    sender: FakeSender


@dataclass(eq=False)
class FakePublisher:
    packets: int = 0
    receiver: FakeReceiver = field(default_factory=FakeReceiver)
    subscriptions: tuple[FakeSubscription, ...] = ()


@dataclass(eq=False)
class FakeRoom:
    publishers: dict[tuple[str, str], FakePublisher] = field(default_factory=dict)
    quality: RoomQuality = field(default_factory=lambda: RoomQuality(lambda: None))

    def publisher(self, party: str, kind: str) -> FakePublisher | None:
        return self.publishers.get((party, kind))


@dataclass
class Lost:
    packets_lost: int


def test_totals_never_go_back_when_publishers_senders_and_calls_go_away() -> None:
    rooms: dict[str, Any] = {}
    metrics = WorkerMetrics("w", rooms, {}, lag_s=lambda: 0.0, load=lambda: 0.0, process=False)
    sender = FakeSender(packets_sent=40, retransmitted=2)
    first = FakePublisher(packets=50, subscriptions=(FakeSubscription(sender),))
    first.receiver._streams = {1: Lost(3), 2: Lost(7)}  # 2 is its RTX stream: not counted
    first.receiver._rtx_ssrc = {2: 1}
    rooms["C1"] = FakeRoom({("tablet", "video"): first})
    metrics.opened = 1
    snap = metrics.sample()
    assert snap.publishers["video"][:2] == (50, 3) and snap.senders["video"][:2] == (40, 2)
    assert (snap.calls_open, snap.calls_opened, snap.calls_closed) == (1, 1, 0)

    # The tablet re-offers: a new publisher (counting from 0) feeds the same sender.
    sender.packets_sent = 45
    second = FakePublisher(packets=4, subscriptions=(FakeSubscription(sender),))
    rooms["C1"].publishers[("tablet", "video")] = second
    snap = metrics.sample()
    assert snap.publishers["video"][0] == 54 and snap.senders["video"][0] == 45
    assert snap.publishers["audio"] == (0, 0, 0, 0)

    # The call ends: its counts stay in the totals, and it is counted closed.
    del rooms["C1"]
    snap = metrics.sample()
    assert snap.publishers["video"][0] == 54 and snap.senders["video"][0] == 45
    assert (snap.calls_open, snap.calls_opened, snap.calls_closed) == (0, 1, 1)

    families = parse(metrics.exposition())
    assert value(families, "visitation_sfu_rtp_packets_received_total", kind="video") == 54
    assert value(families, "visitation_sfu_rtp_packets_lost_total", kind="video") == 3
    assert value(families, "visitation_sfu_calls_closed_total", worker="w") == 1
    assert all(s.labels["worker"] == "w" for f in families.values() for s in f.samples)


# ---------------------------------------------------------------- a real worker process


async def test_a_worker_publishes_its_calls_and_capacity_refusals(
    redis_url: str, redis: Redis
) -> None:
    control = SfuControl(redis, timeout_s=10)
    workers = WorkerPool(redis_url, log_level="WARNING", extra_args=[*FAST, "--max-calls", "1"])
    try:
        [worker] = await workers.start(1)
        await workers.wait_ready(redis)

        async def published() -> dict[str, Metric]:
            raw = await redis.get(METRICS(worker))
            return parse(raw) if raw else {}

        async def shows(sample: str, expected: float) -> bool:
            families = await published()
            return bool(families) and value(families, sample, worker=worker) == expected

        await eventually(lambda: shows("visitation_sfu_calls_open", 0))
        families = await published()
        assert value(families, "process_cpu_seconds_total", worker=worker) > 0
        assert value(families, "visitation_sfu_event_loop_lag_seconds", worker=worker) >= 0
        assert 0 < await redis.pttl(METRICS(worker)) <= 800

        await control.open_call("M1", worker_id=worker)
        await raises("capacity", control.open_call("M2", worker_id=worker))
        await eventually(lambda: shows("visitation_sfu_admission_refusals_total", 1))
        await eventually(lambda: shows("visitation_sfu_calls_open", 1))
        assert value(await published(), "visitation_sfu_calls_opened_total", worker=worker) == 1
        await control.close_call("M1")
        await eventually(lambda: shows("visitation_sfu_calls_closed_total", 1))
        assert value(await published(), "visitation_sfu_calls_open", worker=worker) == 0
    finally:
        codes = await workers.stop(timeout_s=5)
    assert list(codes.values()) == [0]
    assert not await redis.exists(METRICS(worker))  # withdrawn on a clean stop
