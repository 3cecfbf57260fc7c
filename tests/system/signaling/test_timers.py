"""Durable timers: concurrent handlers, leases kept by long handlers, one run per timer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from signaling.timers import TIMERS_KEY, DurableTimers, timer_member
from tests.waiting import eventually

DEADLINE_S = 10.0  # generous: only ever reached when something is wrong


@contextlib.asynccontextmanager
async def running(*timers: DurableTimers) -> AsyncIterator[None]:
    for t in timers:
        t.start()
    try:
        yield
    finally:
        for t in timers:
            await t.stop()


async def test_a_blocked_handler_does_not_hold_up_other_timers(redis: Redis) -> None:
    timers = DurableTimers(redis, interval_s=0.02)
    gate, blocked, fired = asyncio.Event(), asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def slow(call_id: str) -> None:
        order.append(f"slow:{call_id}")
        blocked.set()
        await gate.wait()
        order.append(f"slow-done:{call_id}")

    async def fast(call_id: str) -> None:
        order.append(f"fast:{call_id}")
        fired.set()

    timers.on("slow", slow)
    timers.on("fast", fast)
    async with running(timers):
        await timers.schedule("slow", "A", time.time())
        await asyncio.wait_for(blocked.wait(), DEADLINE_S)
        await timers.schedule("fast", "B", time.time())
        await asyncio.wait_for(fired.wait(), DEADLINE_S)  # while A still blocks
        assert order == ["slow:A", "fast:B"]
        assert timers.running == 1
        gate.set()
        await eventually(lambda: _gone(redis, "slow", "A"), "the slow timer to be removed")
    assert order == ["slow:A", "fast:B", "slow-done:A"]
    assert await redis.zcard(TIMERS_KEY) == 0


async def test_no_more_handlers_than_slots(redis: Redis) -> None:
    timers = DurableTimers(redis, interval_s=0.02, concurrency=2)
    gate = asyncio.Event()
    started: list[str] = []

    async def slow(call_id: str) -> None:
        started.append(call_id)
        await gate.wait()

    timers.on("slow", slow)
    now = time.time()
    for n, call_id in enumerate("ABC"):
        await timers.schedule("slow", call_id, now - 1 + n * 0.001)  # due in order A, B, C
    async with running(timers):
        await eventually(lambda: _true(len(started) == 2), "two handlers")
        # C stays unclaimed (still at its due time) while both slots are taken.
        for _ in range(5):
            await timers.fire_due()
        assert started == ["A", "B"]
        assert await redis.zscore(TIMERS_KEY, timer_member("slow", "C")) < now * 1000
        gate.set()
        await eventually(lambda: _true(started == ["A", "B", "C"]), "C once a slot is free")
        await eventually(lambda: _true_async(redis.zcard(TIMERS_KEY), 0), "every timer handled")


async def test_a_long_handler_keeps_its_lease_against_another_node(redis: Redis) -> None:
    """Lease 1 s, handler blocked for several leases: the second node never runs it."""
    lease_s = 1.0
    nodes = [DurableTimers(redis, interval_s=0.02, lease_s=lease_s) for _ in range(2)]
    gate = asyncio.Event()
    runs: Counter[str] = Counter()

    def handler(node: str) -> Callable[[str], Awaitable[None]]:
        async def handle(call_id: str) -> None:
            runs[node] += 1
            await gate.wait()

        return handle

    for n, timers in enumerate(nodes):
        timers.on("slow", handler(f"node{n}"))
    member = timer_member("slow", "A")
    async with running(*nodes):
        await nodes[0].schedule("slow", "A", time.time())
        await eventually(lambda: _true(sum(runs.values()) == 1), "the first run")
        first_lease = await redis.zscore(TIMERS_KEY, member)
        # Wait (by the lease's own clock) until it was renewed past three leases.
        await eventually(
            lambda: _score_at_least(redis, member, first_lease + 3 * lease_s * 1000),
            "the lease to be renewed three times",
        )
        assert sum(runs.values()) == 1, runs
        gate.set()
        await eventually(lambda: _gone(redis, "slow", "A"), "the timer to be removed once handled")
    assert sum(runs.values()) == 1, runs


async def test_a_failed_handler_is_retried_after_its_lease(redis: Redis) -> None:
    timers = DurableTimers(redis, interval_s=0.02, lease_s=0.3)
    calls: list[str] = []

    async def flaky(call_id: str) -> None:
        calls.append(call_id)
        if len(calls) == 1:
            raise ConnectionError("redis went away")

    timers.on("flaky", flaky)
    async with running(timers):
        await timers.schedule("flaky", "A", time.time())
        await eventually(lambda: _true(len(calls) == 2), "the retry")
        await eventually(lambda: _gone(redis, "flaky", "A"), "the timer to be removed")
    assert calls == ["A", "A"]


async def test_a_timer_rearmed_while_its_handler_runs_is_kept(redis: Redis) -> None:
    timers = DurableTimers(redis, interval_s=0.02)
    later = time.time() + 3600

    async def rearm(call_id: str) -> None:
        await timers.schedule("rearm", call_id, later)

    timers.on("rearm", rearm)
    async with running(timers):
        await timers.schedule("rearm", "A", time.time())
        await eventually(
            lambda: _score_at_least(redis, timer_member("rearm", "A"), int(later * 1000)),
            "the re-armed timer",
        )
        await timers.join()
    assert await redis.zscore(TIMERS_KEY, timer_member("rearm", "A")) == int(later * 1000)


async def test_stop_cancels_a_hung_handler_and_leaves_its_timer(redis: Redis) -> None:
    timers = DurableTimers(redis, interval_s=0.02, stop_grace_s=0.2)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hang(call_id: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    timers.on("hang", hang)
    timers.start()
    await timers.schedule("hang", "A", time.time())
    await asyncio.wait_for(started.wait(), DEADLINE_S)
    await asyncio.wait_for(timers.stop(), DEADLINE_S)
    assert cancelled.is_set() and timers.running == 0
    # Still there, a lease ahead: another node retries it.
    assert await redis.zscore(TIMERS_KEY, timer_member("hang", "A")) > time.time() * 1000


async def _gone(redis: Redis, kind: str, call_id: str) -> bool:
    return await redis.zscore(TIMERS_KEY, timer_member(kind, call_id)) is None


async def _score_at_least(redis: Redis, member: str, score: float) -> bool:
    current = await redis.zscore(TIMERS_KEY, member)
    return current is not None and current >= score


async def _true(value: bool) -> bool:
    return value


async def _true_async(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_timer_lateness_is_measured(redis: Redis) -> None:
    from prometheus_client import REGISTRY

    def observed() -> float:
        labels = {"kind": "lateness-probe"}
        return REGISTRY.get_sample_value("visitation_timer_lateness_seconds_count", labels) or 0

    timers = DurableTimers(redis, interval_s=0.02)
    fired = asyncio.Event()

    async def probe(call_id: str) -> None:
        fired.set()

    timers.on("lateness-probe", probe)
    before = observed()
    async with running(timers):
        await timers.schedule("lateness-probe", "L", time.time() - 2.0)  # 2 s overdue
        await asyncio.wait_for(fired.wait(), DEADLINE_S)
    assert observed() == before + 1
    late = REGISTRY.get_sample_value(
        "visitation_timer_lateness_seconds_bucket", {"kind": "lateness-probe", "le": "1.0"}
    )
    assert late == 0  # it was at least 2 s late
