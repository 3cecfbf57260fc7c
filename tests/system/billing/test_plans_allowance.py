"""The agency's allowance in Redis (billing_hooks/metering/allowance.py and its two Lua scripts), alone
and inside the biller: reserved once per call, never above what remains, never shared by two
calls of one resident on two nodes, consumed once with the family's charge, reset at local
midnight and on local Monday (an injected clock), and kept through a Redis SIGKILL (AOF)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from billing_hooks import Biller, HookBus, Ledger, MemoryHook
from billing_hooks.durability import NotDurable
from billing_hooks.metering.allowance import Allowances, Reservation
from billing_hooks.metering.biller import CallCharge
from billing_hooks.metering.plans import PricingPlans
from core import tariff
from core.directory import Directory
from core.domain import Facility, Pricing
from core.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from core.errors import ProtocolError
from core.redis_pool import connect

DENVER = "America/Denver"
MONTANA = tariff.Plan(payer="family", free_minutes=10, free_period="week")
CONNECTICUT = tariff.Plan(payer="agency", max_minutes_per_day=90)


def at(*parts: int, tz: str = DENVER) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[arg-type,misc]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def settle(allowances: Allowances, call_id: str, seconds: int, facility: str = "MT") -> int:
    """Consume a reservation the way the biller does: under WATCH, in a MULTI."""
    async with allowances._redis.pipeline(transaction=True) as pipe:
        r = await allowances.reservation(call_id)
        pipe.multi()  # type: ignore[no-untyped-call]
        await allowances.queue_settle(pipe, call_id, r.period if r else "", facility, "d", seconds)
        [raw] = await pipe.execute()
    return Allowances.settled(raw)[1]


async def test_a_reservation_is_made_once_and_never_above_what_remains(redis: Redis) -> None:
    clock = Clock(at(2026, 12, 7, 10, 0, 0))
    a = Allowances(redis, clock)
    first = await a.reserve("c1", MONTANA, DENVER, "R1", 1800)
    assert (first.state, first.granted) == ("reserved", 600)
    assert await a.reserve("c1", MONTANA, DENVER, "R1", 1800) == first  # a retry: the same
    assert (await a.reserve("c2", MONTANA, DENVER, "R1", 1800)).granted == 0  # all reserved
    assert await a.remaining(MONTANA, DENVER, "R1") == 0
    assert await settle(a, "c1", 250) == 250
    assert await settle(a, "c1", 600) == 250, "consumed once: a retry returns the first"
    assert await a.remaining(MONTANA, DENVER, "R1") == 350
    assert await settle(a, "c2", 30) == 0, "never more than was reserved"
    assert await a.remaining(MONTANA, DENVER, "R1") == 350
    assert await a.remaining(MONTANA, DENVER, "R2") == 600, "per resident"


async def test_a_settlement_before_the_reservation_voids_it(redis: Redis) -> None:
    a = Allowances(redis)
    assert await settle(a, "late", 100) == 0
    r = await a.reserve("late", MONTANA, DENVER, "R1", 1800)
    assert r == Reservation("void", 0, "")
    assert await a.remaining(MONTANA, DENVER, "R1") == 600


async def test_the_allowance_resets_at_local_midnight_and_on_local_monday(redis: Redis) -> None:
    clock = Clock(at(2026, 12, 6, 23, 50, 0))  # a Sunday evening in Denver (06:50 UTC Monday)
    a = Allowances(redis, clock)
    daily = tariff.Plan(payer="family", free_minutes=5, free_period="day")
    await a.reserve("w1", MONTANA, DENVER, "R1", 1800)
    await a.reserve("d1", daily, DENVER, "R1", 1800)
    clock.now = at(2026, 12, 6, 23, 59, 59)
    assert await a.remaining(MONTANA, DENVER, "R1") == 0
    assert await a.remaining(daily, DENVER, "R1") == 0
    clock.now = at(2026, 12, 7, 0, 0, 0)  # local midnight, and local Monday
    assert await a.remaining(MONTANA, DENVER, "R1") == 600
    assert await a.remaining(daily, DENVER, "R1") == 300
    # Calls that reserved on Sunday settle against Sunday's periods, never Monday's.
    assert await settle(a, "w1", 600) == 600
    assert await settle(a, "d1", 300) == 300
    assert await a.remaining(MONTANA, DENVER, "R1") == 600
    clock.now = at(2026, 12, 6, 12, 0, 0)
    assert await a.remaining(MONTANA, DENVER, "R1") == 0
    # Tuesday: a new day, the same week.
    await a.reserve("w2", MONTANA, DENVER, "R1", 120)
    clock.now = at(2026, 12, 8, 9, 0, 0)
    await settle(a, "w2", 120)
    clock.now = at(2026, 12, 8, 0, 0, 0)
    await a.reserve("w3", MONTANA, DENVER, "R1", 1800)
    await settle(a, "w3", 60)
    clock.now = at(2026, 12, 13, 23, 59, 0)  # Sunday: still that week
    assert await a.remaining(MONTANA, DENVER, "R1") == 540
    clock.now = at(2026, 12, 14, 0, 0, 0)
    assert await a.remaining(MONTANA, DENVER, "R1") == 600


calls = st.lists(
    st.tuples(st.integers(0, 3600), st.integers(0, 4000), st.booleans()), min_size=1, max_size=12
)


@given(limit_min=st.integers(0, 120), plan_calls=calls)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_two_nodes_never_use_the_allowance_twice(
    redis_url: str, limit_min: int, plan_calls: list[tuple[int, int, bool]]
) -> None:
    """Calls of one resident reserve and settle at once through two clients (two nodes), each
    settlement retried: the reservations never add up to more than the allowance, what is used
    is what the calls used (each once), and the allowance never goes negative."""
    plan = tariff.Plan(payer="agency", max_minutes_per_day=limit_min or None)
    limit = plan.allowance_s

    async def run() -> None:
        nodes = [connect(redis_url), connect(redis_url)]
        try:
            a = [Allowances(n) for n in nodes]
            resident = f"R-{uuid.uuid4().hex}"
            ids = [f"{resident}-{i}" for i in range(len(plan_calls))]
            reserved = await asyncio.gather(
                *(
                    a[int(node)].reserve(cid, plan, DENVER, resident, want)
                    for cid, (want, _, node) in zip(ids, plan_calls, strict=True)
                )
            )
            granted = [r.granted for r in reserved]
            if limit is not None:
                assert sum(granted) <= limit
            for r, (want, _, _) in zip(reserved, plan_calls, strict=True):
                assert 0 <= r.granted <= want
            usage = await a[0].usage(plan, DENVER, resident)
            assert (usage.used, usage.reserved) == (0, sum(granted))
            consumed = await asyncio.gather(
                *(
                    settle(a[k % 2], cid, used)
                    for cid, (_, used, _) in zip(ids, plan_calls, strict=True)
                    for k in range(2)
                )
            )
            expect = [min(g, used) for g, (_, used, _) in zip(granted, plan_calls, strict=True)]
            assert consumed == [c for c in expect for _ in range(2)], "each once, both agree"
            usage = await a[1].usage(plan, DENVER, resident)
            assert (usage.used, usage.reserved) == (sum(expect), 0)
            left = usage.remaining(limit)
            if limit is not None:
                assert left is not None and 0 <= left == limit - sum(expect)
        finally:
            for n in nodes:
                await n.aclose()

    asyncio.run(run())


# -- inside the biller ---------------------------------------------------------------------


class World:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self.redis = redis
        self.ledger = Ledger(redis)
        self.events = MemoryHook()
        self.directory = Directory(redis)
        self.plans = PricingPlans(redis, self.directory, clock)
        self.biller = Biller(
            redis, self.ledger, HookBus([self.events]), processor=None, plans=self.plans
        )

    async def facility(self, facility_id: str, rate: int, pricing: Pricing) -> Facility:
        facility = Facility(
            id=facility_id,
            name=facility_id,
            timezone=DENVER,
            rate_cents_per_minute=rate,
            max_call_seconds=1800,
            calling_hours=[{"days": "mon-sun", "start": "00:00", "end": "24:00"}],  # type: ignore[list-item]
            pricing=pricing,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            Directory.queue_facility(pipe, facility)
            await pipe.execute()
        return facility


@pytest.fixture
async def world(redis: Redis) -> World:
    return World(redis, Clock(at(2026, 12, 7, 10, 0, 0)))


async def test_montana_on_the_biller(world: World) -> None:
    await world.facility("MT", 25, Pricing(payer="family", free_minutes=10, free_period="week"))
    await world.ledger.deposit("F", 1000, "opening")
    auth = await world.biller.authorize("c1", "F", 25, 1800, resident_id="R", facility_id="MT")
    assert (auth.allowed_seconds, auth.free_seconds, auth.hold_cents) == (1800, 600, 20 * 25)
    done = await world.biller.settle(
        CallCharge("c1", "F", 12 * 60, "hangup", 25, facility_id="MT", resident_id="R")
    )
    assert (done.agency_seconds, done.charged_cents, done.balance_cents) == (600, 50, 950)
    again = await world.biller.settle(
        CallCharge("c1", "F", 12 * 60, "hangup", 25, facility_id="MT", resident_id="R")
    )
    assert again == done
    settled, *repeats = world.events.of("call.settled")
    assert all(r.id == settled.id for r in repeats), "one event (the outbox drops repeats)"
    assert (settled.data["agency_seconds"], settled.data["charged_cents"]) == (600, 50)
    [record] = await world.biller.calls("F")
    assert record["agency_seconds"] == 600
    assert await world.plans.allowances.agency_seconds("MT", "2026-12-07") == 600
    # The week's free minutes are gone: the next call is the family's from the first second.
    auth2 = await world.biller.authorize("c2", "F", 25, 1800, resident_id="R", facility_id="MT")
    assert (auth2.free_seconds, auth2.allowed_seconds, auth2.hold_cents) == (0, 1800, 750)


async def test_concurrent_settlements_on_two_nodes_charge_and_consume_once(
    world: World, redis_url: str
) -> None:
    await world.facility("MT", 25, Pricing(payer="family", free_minutes=10, free_period="week"))
    await world.ledger.deposit("F", 1000, "opening")
    await world.biller.authorize("c1", "F", 25, 1800, resident_id="R", facility_id="MT")
    other = connect(redis_url)
    try:
        b2 = Biller(
            other,
            Ledger(other),
            HookBus([world.events]),
            processor=None,
            plans=PricingPlans(other, Directory(other), world.plans.allowances.clock),
        )
        results = await asyncio.gather(
            *(
                b.settle(
                    CallCharge("c1", "F", 700, "hangup", 25, facility_id="MT", resident_id="R")
                )
                for b in [world.biller, b2] * 4
            )
        )
    finally:
        await other.aclose()
    assert set(results) == {results[0]}
    assert (results[0].agency_seconds, results[0].charged_cents) == (600, 50)
    kinds = [e.kind for e in await world.ledger.entries("F")]
    assert kinds == ["deposit", "hold", "charge", "release"]
    usage = await world.plans.allowances.usage(tariff.Plan("family", 10, "week"), DENVER, "R")
    assert (usage.used, usage.reserved) == (600, 0)


async def test_connecticut_caps_the_day_and_then_refuses(world: World) -> None:
    facility = await world.facility("CT", 0, Pricing(payer="agency", max_minutes_per_day=90))
    # 85 minutes already talked today (a settled call of a recorded length).
    await world.biller.authorize("c0", "F", 0, 4 * 3600, resident_id="R", facility_id="CT")
    await world.biller.settle(
        CallCharge("c0", "F", 85 * 60, "hangup", 0, facility_id="CT", resident_id="R")
    )
    quote = await world.plans.ring("R", facility, 0)
    assert (quote.allowed_seconds, quote.free_seconds) == (300, 300)
    auth = await world.biller.authorize("c1", "F", 0, 1800, resident_id="R", facility_id="CT")
    assert (auth.allowed_seconds, auth.free_seconds, auth.hold_cents) == (300, 300, 0)
    done = await world.biller.settle(
        CallCharge("c1", "F", 305, "time_limit", 0, facility_id="CT", resident_id="R")
    )
    assert (done.agency_seconds, done.charged_cents) == (300, 0)
    with pytest.raises(ProtocolError) as refused:
        await world.plans.ring("R", facility, 0)
    assert refused.value.to_ack()["error"]["code"] == "quota_exhausted"
    info = await world.plans.allowance_info("R", facility)
    assert info["free_seconds_remaining"] == 0
    assert info["resets_at"] == at(2026, 12, 8, 0, 0, 0)
    assert (await world.ledger.balance("F")).balance_cents == 0


# -- durability ---------------------------------------------------------------------------


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path / "redis")
    embedded.start()
    yield embedded
    embedded.stop()


def restart(embedded: EmbeddedRedis) -> None:
    """SIGKILL the server and start it again on its port from its AOF. On a loaded machine its
    pid file may come later than ``restart`` waits for: then that restart is tried again (it
    kills a server that did start after all)."""
    for attempt in range(3):
        try:
            embedded.restart()
            return
        except EmbeddedRedisError:
            if attempt == 2:
                raise


async def test_a_reservation_and_its_settlement_survive_a_redis_kill(
    own_redis: EmbeddedRedis,
) -> None:
    assert own_redis.url is not None
    client = connect(own_redis.url)
    try:
        a = Allowances(client)
        await a.reserve("c1", MONTANA, DENVER, "R1", 1800)
        restart(own_redis)  # SIGKILL and start again from the AOF
        assert (await a.reservation("c1")) == Reservation(
            "reserved", 600, a.period(MONTANA, DENVER, "R1")
        )
        assert await settle(a, "c1", 400) == 400
        restart(own_redis)
        assert await settle(a, "c1", 600) == 400, "still settled once"
        assert await a.remaining(MONTANA, DENVER, "R1") == 200
    finally:
        await client.aclose()


async def test_an_unconfirmed_reservation_is_not_acknowledged(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISITATION_REDIS_MIN_REPLICAS", "1")
    monkeypatch.setenv("VISITATION_REDIS_WAIT_TIMEOUT", "0.05")
    strict = connect(redis_url)
    try:
        with pytest.raises(NotDurable):
            await Allowances(strict).reserve("c1", MONTANA, DENVER, "R1", 1800)
        with pytest.raises(NotDurable):  # the retry finds it and cannot confirm it either
            await Allowances(strict).reserve("c1", MONTANA, DENVER, "R1", 1800)
        assert (await Allowances(redis).reservation("c1")) is not None
        assert await Allowances(redis).remaining(MONTANA, DENVER, "R1") == 0, "reserved once"
    finally:
        await strict.aclose()
