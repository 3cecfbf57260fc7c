"""The signaling side of worker events: order per call, retries, poison events, stable names."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from media.control import WorkerEvent
from media.events import EventConsumer, EventHandler
from tests.waiting import eventually

STREAM = "test:events"  # not the shared worker's sfu:events
pytestmark = pytest.mark.foreign_keys  # the test's own stream and its dead letters
GROUP = "signaling"
DEADLINE_S = 10.0  # generous: only ever reached when something is wrong


def event(call_id: str, seq: int = 0) -> WorkerEvent:
    return WorkerEvent(type="closed", call_id=call_id, worker_id="w", at=float(seq))


async def publish(redis: Redis, *events: WorkerEvent) -> list[bytes]:
    return [await redis.xadd(STREAM, dict(e.to_fields())) for e in events]


@contextlib.asynccontextmanager
async def consuming(
    redis: Redis, name: str, handler: EventHandler, **options: Any
) -> AsyncIterator[EventConsumer]:
    consumer = EventConsumer(redis, name, handler, stream=STREAM, block_ms=50, **options)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def pending(redis: Redis, consumer: str | None = None) -> list[bytes]:
    rows = await redis.xpending_range(STREAM, GROUP, "-", "+", 100, consumername=consumer)
    return [row["message_id"] for row in rows]


async def no_pending(redis: Redis) -> bool:
    return not await pending(redis)


async def test_events_of_one_call_in_order_other_calls_alongside(redis: Redis) -> None:
    gate, b_done = asyncio.Event(), asyncio.Event()
    seen: defaultdict[str, list[int]] = defaultdict(list)

    async def handle(e: WorkerEvent) -> None:
        if e.call_id == "A" and e.at == 1:
            await gate.wait()  # A's first event is slow ...
        seen[e.call_id].append(int(e.at))
        if len(seen["B"]) == 5:
            b_done.set()

    async with consuming(redis, "node-a", handle):
        for n in range(1, 6):
            await publish(redis, event("A", n), event("B", n))
        await asyncio.wait_for(b_done.wait(), DEADLINE_S)  # ... B does not wait for it
        assert seen["A"] == []  # and A's later events wait their turn
        gate.set()
        await eventually(lambda: _is(len(seen["A"]), 5), "A's events")
        await eventually(lambda: no_pending(redis), "every event acked")
    assert seen == {"A": [1, 2, 3, 4, 5], "B": [1, 2, 3, 4, 5]}


async def test_a_poison_event_is_dead_lettered_after_n_deliveries(redis: Redis) -> None:
    attempts: Counter[str] = Counter()

    async def handle(e: WorkerEvent) -> None:
        attempts[e.call_id] += 1
        if e.call_id == "POISON":
            raise RuntimeError("this event always fails")

    options: dict[str, Any] = {"claim_idle_ms": 100, "max_deliveries": 3}
    async with consuming(redis, "node-a", handle, **options) as consumer:
        [poison_id, _] = await publish(redis, event("POISON"), event("OK"))
        await eventually(lambda: _length(redis, consumer.dead_stream, 1), "the dead letter")
        await eventually(lambda: no_pending(redis), "every event acked")
    assert attempts == {"POISON": 3, "OK": 1}
    [(_, dead)] = await redis.xrange(consumer.dead_stream)
    assert dead[b"call_id"] == b"POISON" and dead[b"entry_id"] == poison_id
    assert dead[b"deliveries"] == b"3"


async def test_an_event_delivered_too_often_is_dead_lettered_unhandled(redis: Redis) -> None:
    """E.g. it crashed its node every time: it is not handed to a handler again."""
    await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    [entry_id] = await publish(redis, event("CRASHER"))
    await redis.xreadgroup(GROUP, "crashed", {STREAM: ">"})
    for _ in range(3):  # the crashed node's restarts each re-read it
        await redis.xreadgroup(GROUP, "crashed", {STREAM: "0"})
    handled: list[str] = []

    async def handle(e: WorkerEvent) -> None:
        handled.append(e.call_id)

    options: dict[str, Any] = {"claim_idle_ms": 100, "max_deliveries": 3}
    async with consuming(redis, "node-a", handle, **options) as consumer:
        await eventually(lambda: _length(redis, consumer.dead_stream, 1), "the dead letter")
        await eventually(lambda: no_pending(redis), "the event acked")
    assert handled == []
    [(_, dead)] = await redis.xrange(consumer.dead_stream)
    assert dead[b"entry_id"] == entry_id and dead[b"deliveries"] == b"5"


async def test_a_restarted_consumer_takes_back_its_own_pending_events(redis: Redis) -> None:
    started = asyncio.Event()

    async def hang(e: WorkerEvent) -> None:
        started.set()
        await asyncio.Event().wait()

    first = EventConsumer(redis, "node-a", hang, stream=STREAM, block_ms=50, stop_grace_s=0.1)
    await first.start()
    [lost] = await publish(redis, event("E1"))
    await asyncio.wait_for(started.wait(), DEADLINE_S)
    await first.stop()  # node-a dies mid-handling: E1 stays pending, on node-a
    assert await pending(redis, "node-a") == [lost]

    handled: list[str] = []

    async def handle(e: WorkerEvent) -> None:
        handled.append(e.call_id)

    # Another node does not take E1 (it is not idle long enough) ...
    async with consuming(redis, "node-b", handle, claim_idle_ms=60_000):
        await publish(redis, event("E2"))
        await eventually(lambda: _is(len(handled), 1), "node-b to handle E2")
    assert handled == ["E2"] and await pending(redis, "node-a") == [lost]
    # ... node-a, restarted under its name, takes it back at once.
    async with consuming(redis, "node-a", handle, claim_idle_ms=60_000):
        await eventually(lambda: no_pending(redis), "E1 handled and acked")
    assert handled == ["E2", "E1"]


async def test_dead_consumers_are_removed(redis: Redis) -> None:
    await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await redis.xgroup_createconsumer(STREAM, GROUP, "gone")  # nothing pending
    await publish(redis, event("LEFT"))
    await redis.xreadgroup(GROUP, "gone-mid-event", {STREAM: ">"})  # died holding LEFT
    handled: list[str] = []

    async def handle(e: WorkerEvent) -> None:
        handled.append(e.call_id)

    options: dict[str, Any] = {"claim_idle_ms": 100, "dead_consumer_ms": 300}
    async with consuming(redis, "node-a", handle, **options):
        await eventually(lambda: _consumers_are(redis, {b"node-a"}), "the dead consumers removed")
        assert handled == ["LEFT"]  # taken over before its consumer went
    assert await no_pending(redis)


async def _consumers_are(redis: Redis, names: set[bytes]) -> bool:
    return {c["name"] for c in await redis.xinfo_consumers(STREAM, GROUP)} == names


async def _length(redis: Redis, stream: str, n: int) -> bool:
    return int(await redis.xlen(stream)) == n


async def _is(value: int, expected: int) -> bool:
    return value == expected
