"""The end-of-call chain: off the path of other calls, and every step once.

Calls are connected by hand (``CallService.connect``, as the worker's ``connected`` event does)
and their timers fired by re-arming them due now, so nothing waits for media or for a cap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from redis.asyncio import Redis

from billing_hooks import Settlement
from signaling.call_end import finish_lock_key
from signaling.call_machine import SETTLE, TIME_LIMIT, WARNING
from signaling.call_state import CallRecord
from signaling.calls import CallService, family_room, tablet_room
from signaling.timers import TIMERS_KEY, timer_member
from tests.conftest import Clients, ClientsFactory, Ringing, accepted
from tests.seeds import short_seed_data
from tests.waiting import eventually
from visitation.seed import apply_seed, parse_seed

DEADLINE_S = 10.0  # generous: only ever reached when something is wrong


def service(pool: Clients) -> CallService:
    assert pool.node is not None
    return pool.node.node.calls


async def in_call(pool: Clients, resident: str, family: str) -> Ringing:
    """An accepted call moved to connected as the worker's ``connected`` event would."""
    calls = service(pool)
    pair = await accepted(pool, resident, family)
    record = await calls.store.get(pair.call_id)
    assert record is not None and await calls.connect(record)
    await pair.tablet.next("call.connected")
    await pair.family.next("call.connected")
    return pair


async def settle_timer_gone(redis: Redis, call_id: str) -> bool:
    return await redis.zscore(TIMERS_KEY, timer_member(SETTLE, call_id)) is None


async def everything_delivered(calls: CallService, pair: Ringing) -> None:
    """Whatever was emitted to the parties before this has arrived (events keep their order)."""
    await calls.emit("test.sentinel", {}, tablet_room(pair.tablet.name))
    await calls.emit("test.sentinel", {}, family_room(pair.family.name))
    for client in (pair.tablet, pair.family):
        await client.next("test.sentinel")


async def test_a_hung_end_of_call_delays_no_other_call(
    clients_on: ClientsFactory, redis: Redis
) -> None:
    """A's and C's end-of-call chains hang (as on a hung SFU worker); meanwhile C's hang-up is
    acked and B gets its warning and its hang-up at the limit, with its whole chain."""
    pool = await clients_on(media_timeout_s=300)
    await apply_seed(redis, parse_seed(json.dumps(short_seed_data())))
    calls = service(pool)
    a = await in_call(pool, "R1", "F1")
    b = await in_call(pool, "R2", "F2")
    c = await in_call(pool, "RF", "FF")
    hung = {a.call_id: asyncio.Event(), c.call_id: asyncio.Event()}
    gate = asyncio.Event()

    close = calls.media.close

    async def hang(record: CallRecord) -> bool:  # closing the room hangs (a hung worker)
        if record.call_id in hung:
            hung[record.call_id].set()
            await gate.wait()
        return await close(record)

    calls.media.close = hang  # type: ignore[method-assign]  # the fault
    try:
        await calls.timers.schedule(TIME_LIMIT, a.call_id, time.time())
        assert (await a.tablet.next("call.ended", DEADLINE_S))["reason"] == "time_limit"
        await asyncio.wait_for(hung[a.call_id].wait(), DEADLINE_S)

        await c.family.hangup(c.call_id)  # acked while C's chain is about to hang
        assert (await c.tablet.next("call.ended", DEADLINE_S))["reason"] == "hangup"
        await asyncio.wait_for(hung[c.call_id].wait(), DEADLINE_S)

        await calls.timers.schedule(WARNING, b.call_id, time.time())
        for party in (b.tablet, b.family):
            warning = await party.next("call.warning", DEADLINE_S)
            assert warning == {"call_id": b.call_id, "remaining_s": 60}
        await calls.timers.schedule(TIME_LIMIT, b.call_id, time.time())
        assert (await b.tablet.next("call.ended", DEADLINE_S))["reason"] == "time_limit"
        family_end = await b.family.next("call.ended", DEADLINE_S)
        assert family_end["reason"] == "time_limit" and family_end["charged_cents"] == 0
        await eventually(lambda: settle_timer_gone(redis, b.call_id), "B's chain to complete")

        assert not gate.is_set()  # A and C were hung all along
        assert await redis.exists(finish_lock_key(a.call_id), finish_lock_key(c.call_id)) == 2
    finally:
        gate.set()
    await calls.finisher.join()
    for pair in (a, c):
        assert await settle_timer_gone(redis, pair.call_id)
        assert "charged_cents" in await pair.family.next("call.ended", DEADLINE_S)


async def test_warning_and_the_familys_call_ended_go_out_once(
    clients_on: ClientsFactory, redis: Redis
) -> None:
    pool = await clients_on(media_timeout_s=300)
    calls = service(pool)
    pair = await in_call(pool, "R1", "F1")
    warning = timer_member(WARNING, pair.call_id)
    warned_at = []
    for _ in range(2):  # the warning timer fires twice (a retry after its lease, a 2nd node)
        await calls.timers.schedule(WARNING, pair.call_id, time.time())
        await eventually(lambda: _gone(redis, warning), "the warning timer to fire")
        record = await calls.store.get(pair.call_id)
        assert record is not None
        warned_at.append(record.warned_at)
    await calls.timers.join()
    # The moment of the one warning is on the record (for the recording's timeline).
    assert warned_at[0] > record.connected_at > 0 and warned_at[1] == warned_at[0]

    await pair.family.hangup(pair.call_id)
    ended = await pair.family.next("call.ended")
    await eventually(lambda: settle_timer_gone(redis, pair.call_id), "the chain to complete")
    await calls.finisher.join()
    # The chain again: from the settle timer (a late retry), and run by hand.
    await calls.finisher.on_settle_timer(pair.call_id)
    record = await calls.store.get(pair.call_id)
    assert record is not None and await calls.finisher.finish(record)
    await calls.finisher.join()

    await everything_delivered(calls, pair)
    for client in (pair.tablet, pair.family):
        assert len(client.events_named("call.warning")) == 1
        assert len(client.events_named("call.ended")) == 1
    assert pair.family.events_named("call.ended") == [ended]
    assert await settle_timer_gone(redis, pair.call_id)


async def test_the_settle_timer_never_doubles_a_live_run_nor_the_familys_event(
    clients_on: ClientsFactory, redis: Redis
) -> None:
    """While a run hangs on a live node, the settle timer starts no second one; once that
    node is gone (its lock lapsed), a second run finishes the call without a second
    ``call.ended`` to the family."""
    pool = await clients_on(media_timeout_s=300, settle_retry_s=3600)  # fired by hand here
    calls = service(pool)
    settled: Counter[str] = Counter()
    real_settle = calls.billing.settle

    async def counting_settle(record: CallRecord) -> Settlement:
        settled[record.call_id] += 1
        return await real_settle(record)

    gate, hung = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    close = calls.media.close

    async def hang_first_run(record: CallRecord) -> bool:
        runs.append(record.call_id)
        if len(runs) == 1:
            hung.set()
            await gate.wait()
        return await close(record)

    calls.billing.settle = counting_settle  # type: ignore[method-assign]  # counted
    calls.media.close = hang_first_run  # type: ignore[method-assign]  # the first run hangs
    pair = await in_call(pool, "R1", "F1")
    await pair.tablet.hangup(pair.call_id)
    ended = await pair.family.next("call.ended")
    await asyncio.wait_for(hung.wait(), DEADLINE_S)
    record = await calls.store.get(pair.call_id)
    assert record is not None
    try:
        assert not await calls.finisher.finish(record)  # the first run holds the call
        await calls.finisher.on_settle_timer(pair.call_id)  # nor from the timer
        await eventually(lambda: _is(calls.finisher.running, 1), "the timer's run to give up")
        assert settled[pair.call_id] == 1 and runs == [pair.call_id]

        await redis.delete(finish_lock_key(pair.call_id))  # its node died: the lock lapsed
        assert await calls.finisher.finish(record)
        assert settled[pair.call_id] == 2 and len(runs) == 2  # settlement is idempotent
        assert await settle_timer_gone(redis, pair.call_id)
    finally:
        gate.set()
    await calls.finisher.join()
    await everything_delivered(calls, pair)
    assert pair.family.events_named("call.ended") == [ended]
    assert ended["charged_cents"] == 0  # connected for under 10 s: free
    assert await redis.hget("acct:F1", "held") == b"0"


async def _is(value: int, expected: int) -> bool:
    return value == expected


async def _gone(redis: Redis, member: str) -> bool:
    return await redis.zscore(TIMERS_KEY, member) is None
