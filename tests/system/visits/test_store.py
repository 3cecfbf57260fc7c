"""The booking store on the real Redis: book.lua and transition.lua, and booking atomic across
connections (50 families racing for a slot's 3 stations)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from core.directory import Directory
from core.domain import SeedFile
from core.redis_text import text
from signaling.timers import TIMERS_KEY, DurableTimers
from tests.system.visits.conftest import RACERS, next_slot, slot_in
from visits.events import VisitEvents
from visits.lifecycle import VisitLifecycle
from visits.record import Visit, VisitStatus
from visits.redis_keys import FAMILY_HOLDS, RESIDENT_HOLDS, SLOT
from visits.rules import Refusal
from visits.service import VisitService
from visits.store import VisitStore


def make_visit(start: int, resident: str = "R", family: str = "F", minutes: int = 30) -> Visit:
    return Visit(
        visit_id=uuid.uuid4().hex,
        facility_id="FAC",
        resident_id=resident,
        family_id=family,
        start=start,
        end=start + minutes * 60,
        status=VisitStatus.BOOKED,
        timezone="UTC",
    )


WEEK = (0, 2**40)


async def test_book_lua_checks_conflict_weekly_limit_and_slot_full(redis: Redis) -> None:
    store = VisitStore(redis)
    start = next_slot(time.time() + 86400)
    first = make_visit(start, "R1", "F1")
    await store.book(first, week=WEEK, concurrent=2, max_per_week=2)
    stored = await store.get(first.visit_id)
    assert stored == first
    # Either side already holds that time: conflict (a half-overlapping 60 min visit too).
    for resident, family, begin in (("R1", "F2", start), ("R2", "F1", start - 900)):
        with pytest.raises(Refusal) as caught:
            await store.book(
                make_visit(begin, resident, family), week=WEEK, concurrent=5, max_per_week=5
            )
        assert caught.value.code == "conflict"
    # Back to back is no overlap.
    await store.book(make_visit(start + 1800, "R1", "F1"), week=WEEK, concurrent=2, max_per_week=2)
    with pytest.raises(Refusal) as caught:
        await store.book(
            make_visit(start + 7200, "R1", "F9"), week=WEEK, concurrent=2, max_per_week=2
        )
    assert caught.value.code == "weekly_limit"
    await store.book(make_visit(start, "R2", "F2"), week=WEEK, concurrent=2, max_per_week=2)
    with pytest.raises(Refusal) as caught:
        await store.book(make_visit(start, "R3", "F3"), week=WEEK, concurrent=2, max_per_week=2)
    assert caught.value.code == "slot_full"
    assert await store.taken("FAC", [start, start + 1800, start + 3600]) == [2, 1, 0]


async def test_weekly_limit_counts_only_the_visits_of_that_week(redis: Redis) -> None:
    store = VisitStore(redis)
    monday = next_slot(time.time() + 7 * 86400, 7 * 24 * 60)  # some week boundary (UTC grid)
    week_before, week_of = (monday - 7 * 86400, monday), (monday, monday + 7 * 86400)
    await store.book(make_visit(monday - 1800), week=week_before, concurrent=5, max_per_week=1)
    # The last slot of one week does not count in the next.
    await store.book(make_visit(monday, family="F2"), week=week_of, concurrent=5, max_per_week=1)
    with pytest.raises(Refusal) as caught:
        await store.book(
            make_visit(monday + 3600, family="F3"), week=week_of, concurrent=5, max_per_week=1
        )
    assert caught.value.code == "weekly_limit"


async def test_transition_lua_moves_only_from_allowed_and_releases_holds(redis: Redis) -> None:
    store = VisitStore(redis)
    start = next_slot(time.time() + 86400)
    visit = make_visit(start)
    await store.book(visit, week=WEEK, concurrent=1, max_per_week=1)
    done = await store.transition(visit, VisitStatus.MISSED, {VisitStatus.PENDING})
    assert (done.applied, done.previous) == (False, "booked")
    done = await store.transition(
        visit, VisitStatus.CANCELED, {VisitStatus.BOOKED}, reason="staff", updated_at=1.5
    )
    assert (done.applied, done.previous) == (True, "booked")
    after = await store.get(visit.visit_id)
    assert after is not None and after.status == VisitStatus.CANCELED and after.reason == "staff"
    assert await redis.scard(SLOT("FAC", start)) == 0
    assert await redis.zcard(RESIDENT_HOLDS("R")) == 0
    assert await redis.zcard(FAMILY_HOLDS("F")) == 0
    # Given back: the slot, the week and the time are free again.
    await store.book(make_visit(start), week=WEEK, concurrent=1, max_per_week=1)
    gone = await store.transition(make_visit(start), VisitStatus.CANCELED, {VisitStatus.BOOKED})
    assert (gone.applied, gone.previous) == (False, "")


async def test_a_missed_visit_keeps_its_place_in_the_week(redis: Redis) -> None:
    store = VisitStore(redis)
    start = next_slot(time.time() + 86400)
    visit = make_visit(start)
    await store.book(visit, week=WEEK, concurrent=1, max_per_week=1)
    assert (await store.transition(visit, VisitStatus.MISSED, {VisitStatus.BOOKED})).applied
    with pytest.raises(Refusal, match="this week"):
        await store.book(
            make_visit(start + 7200, family="F2"), week=WEEK, concurrent=5, max_per_week=1
        )


def _service(redis: Redis, emitted: list[tuple[str, dict[str, Any], str]]) -> VisitService:
    async def emit(event: str, data: dict[str, Any], room: str) -> None:
        emitted.append((event, data, room))

    store = VisitStore(redis)
    events = VisitEvents(emit, tablet_room=lambda r: f"t:{r}", family_room=lambda f: f"f:{f}")
    lifecycle = VisitLifecycle(store, DurableTimers(redis), events)
    return VisitService(Directory(redis), store, events, lifecycle)


async def test_fifty_families_race_for_three_stations(
    redis_url: str, redis: Redis, seeded: SeedFile
) -> None:
    """50 bookings for one slot with ``concurrent: 3``, each from its own task on its own Redis
    connection (as from 50 nodes), all let go at once: exactly 3 are booked."""
    start = slot_in(2)
    connections = [Redis.from_url(redis_url, single_connection_client=True) for _ in range(RACERS)]
    emitted: list[tuple[str, dict[str, Any], str]] = []
    services = [_service(conn, emitted) for conn in connections]
    for conn in connections:
        await conn.ping()
    gate = asyncio.Event()
    ready: list[int] = []
    all_ready = asyncio.Event()

    async def race(i: int) -> str:
        ready.append(i)
        if len(ready) == RACERS:
            all_ready.set()
        await gate.wait()
        try:
            visit = await services[i].book(f"FR{i}", f"RR{i}", start)
        except Refusal as exc:
            return exc.code
        return visit.status.value

    try:
        tasks = [asyncio.create_task(race(i)) for i in range(RACERS)]
        await asyncio.wait_for(all_ready.wait(), 10)  # every racer at the gate, then go
        gate.set()
        results = await asyncio.gather(*tasks)
    finally:
        for conn in connections:
            await conn.aclose()
    assert sorted(results).count("booked") == 3, results
    assert results.count("slot_full") == RACERS - 3
    assert await redis.scard(SLOT("RACE", start)) == 3
    listed = await VisitStore(redis).of_facility("RACE", start - 1, start + 1)
    assert len(listed) == 3 and {v.status for v in listed} == {VisitStatus.BOOKED}
    assert len([e for e in emitted if e[0] == "visit.updated"]) == 3 * 2  # tablet and family
    # The three booked visits' timers are armed (24 h reminder passed: 15 min, due, end).
    members = {text(m) for m in await redis.zrange(TIMERS_KEY, 0, -1)}
    for visit in listed:
        assert {
            f"visit_remind_900|{visit.visit_id}",
            f"visit_due|{visit.visit_id}",
            f"visit_end|{visit.visit_id}",
        } <= members
