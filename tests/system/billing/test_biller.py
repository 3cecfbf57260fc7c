"""Biller: authorize at connect, settle exactly once, AutoPay, closing — on a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from billing_hooks import (
    AutoPaySettings,
    Biller,
    BillingError,
    FakeProcessor,
    HookBus,
    Ledger,
    MemoryHook,
    PaymentResult,
)
from billing_hooks.metering.biller import CallCharge

RATE, MAX_S = 16, 1800


class World:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.ledger = Ledger(redis)
        self.events = MemoryHook()
        self.processor = FakeProcessor()
        self.biller = Biller(redis, self.ledger, HookBus([self.events]), processor=self.processor)

    async def account(self, family: str, cents: int) -> None:
        await self.ledger.deposit(family, cents, f"opening:{family}")

    async def available(self, family: str) -> int:
        return (await self.ledger.balance(family)).available_cents


@pytest.fixture
async def world(redis: Redis) -> World:
    return World(redis)


async def test_authorize_holds_the_whole_allowance(world: World) -> None:
    await world.account("F", 1000)
    auth = await world.biller.authorize("c1", "F", RATE, MAX_S)
    # 1000 // 16 = 62 minutes affordable; the facility allows 30.
    assert (auth.allowed_seconds, auth.hold_cents) == (1800, 30 * RATE)
    assert await world.available("F") == 1000 - 480
    poor = await world.biller.authorize("c2", "F", RATE, 3600)
    assert (poor.allowed_seconds, poor.hold_cents) == (32 * 60, 32 * RATE)
    assert await world.available("F") == 8


async def test_authorize_is_idempotent_under_concurrency(world: World) -> None:
    await world.account("F", 1000)
    auths = await asyncio.gather(*(world.biller.authorize("c1", "F", RATE, 600) for _ in range(8)))
    assert set(auths) == {auths[0]} and auths[0].hold_cents == 160
    assert (await world.ledger.balance("F")).held_cents == 160
    assert [e.kind for e in await world.ledger.entries("F")] == ["deposit", "hold"]
    assert len({e.id for e in world.events.of("call.authorized")}) == 1


@pytest.mark.parametrize(
    ("seconds", "reason", "charged"),
    [
        (0, "hangup", 0),
        (9, "hangup", 0),
        (10, "hangup", 16),
        (61, "hangup", 32),
        (61, "connection_lost", 16),
        (119, "server_shutdown", 16),
        (600, "time_limit", 160),
        (9999, "time_limit", 480),  # a late hang-up never costs more than the hold
    ],
)
async def test_settle_charges_rule_6(world: World, seconds: int, reason: str, charged: int) -> None:
    await world.account("F", 1000)
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    result = await world.biller.settle(
        CallCharge("c1", "F", seconds, reason, RATE, facility_id="SQ")
    )
    assert (result.charged_cents, result.balance_cents) == (charged, 1000 - charged)
    b = await world.ledger.balance("F")
    assert (b.balance_cents, b.held_cents, b.charges_cents) == (1000 - charged, 0, charged)


async def test_settle_exactly_once_whatever_the_retries(world: World) -> None:
    await world.account("F", 1000)
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    # Two nodes, retries, even disagreeing durations: one charge, and everyone gets the first.
    results = await asyncio.gather(
        *(world.biller.settle(CallCharge("c1", "F", 125 + i, "hangup", RATE)) for i in range(10))
    )
    assert len(set(results)) == 1
    again = await world.biller.settle(CallCharge("c1", "F", 999, "hangup", RATE))
    assert again == results[0] and again.charged_cents == 48
    assert (await world.ledger.balance("F")).charges_cents == 48
    assert [e.kind for e in await world.ledger.entries("F")].count("charge") == 1
    assert len(await world.biller.calls("F")) == 1
    settled = world.events.of("call.settled")
    assert {e.id for e in settled} == {"call.settled:c1"}
    assert all(e.data["charged_cents"] == 48 for e in settled)


async def test_the_rate_is_fixed_at_connect(world: World) -> None:
    await world.account("F", 1000)
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    result = await world.biller.settle(
        CallCharge("c1", "F", 60, "hangup", 25)
    )  # admin raised it mid-call
    assert result.charged_cents == RATE


async def test_a_call_that_never_connected_costs_nothing(world: World) -> None:
    await world.account("F", 1000)
    result = await world.biller.settle(CallCharge("c1", "F", 0, "connection_lost", RATE))
    assert (result.charged_cents, result.balance_cents) == (0, 1000)
    # A connect that lost the race with the end can never strand a hold.
    late = await world.biller.authorize("c1", "F", RATE, MAX_S)
    assert (late.allowed_seconds, late.hold_cents) == (0, 0)
    b = await world.ledger.balance("F")
    assert (b.balance_cents, b.held_cents) == (1000, 0)
    assert [e.kind for e in await world.ledger.entries("F")] == ["deposit"]


async def test_connect_and_end_racing_never_strand_money(world: World) -> None:
    for i in range(20):
        family = f"F{i}"
        await world.account(family, 1000)
        await asyncio.gather(
            world.biller.authorize(f"c{i}", family, RATE, MAX_S),
            world.biller.settle(CallCharge(f"c{i}", family, 0, "connection_lost", RATE)),
        )
        b = await world.ledger.balance(family)
        assert (b.balance_cents, b.held_cents) == (1000, 0)


async def test_call_history(world: World) -> None:
    await world.account("F", 1000)
    for n, seconds in enumerate((30, 200)):
        await world.biller.authorize(f"c{n}", "F", RATE, MAX_S)
        await world.biller.settle(
            CallCharge(f"c{n}", "F", seconds, "hangup", RATE, facility_id="SQ", started_at=1.0 + n)
        )
    calls = await world.biller.calls("F")
    assert [(c["call_id"], c["duration_s"], c["charged_cents"]) for c in calls] == [
        ("c1", 200, 64),
        ("c0", 30, 16),
    ]
    assert calls[0]["facility_id"] == "SQ" and calls[0]["started_at"] == 2.0


async def test_low_balance_and_autopay_once(world: World) -> None:
    await world.account("F", 600)
    await world.biller.set_autopay("F", AutoPaySettings(True, 2000))
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    for _ in range(3):
        result = await world.biller.settle(CallCharge("c1", "F", 600, "hangup", RATE))
        await world.biller.drain()
    assert result.balance_cents == 600 - 160
    assert {e.data["balance_cents"] for e in world.events.of("low_balance")} == {440}
    b = await world.ledger.balance("F")
    assert b.available_cents == 440 + 2000 and b.deposits_cents == 2600
    assert [e.kind for e in await world.ledger.entries("F")].count("autopay") == 1
    assert len(world.processor.succeeded()) == 1
    funded = world.events.of("autopay")
    assert funded and all(e.data["status"] == "funded" for e in funded)
    assert await world.redis.hlen("billing:funding:pending") == 0


async def test_autopay_off_or_balance_high_does_nothing(world: World) -> None:
    await world.account("F", 600)
    await world.account("G", 5000)
    await world.biller.set_autopay("G", AutoPaySettings(True, 500))
    for family in ("F", "G"):
        await world.biller.authorize(f"c-{family}", family, RATE, MAX_S)
        await world.biller.settle(CallCharge(f"c-{family}", family, 600, "hangup", RATE))
    await world.biller.drain()
    assert world.processor.payments == {}
    assert [e.data["family_id"] for e in world.events.of("low_balance")] == ["F"]


async def test_autopay_failure_leaves_the_ledger_alone(world: World) -> None:
    await world.account("F", 600)
    await world.biller.set_autopay("F", AutoPaySettings(True, 1000))
    world.processor.fail_with = "card_declined"
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    await world.biller.settle(CallCharge("c1", "F", 600, "hangup", RATE))
    await world.biller.drain()
    assert await world.available("F") == 440
    assert [e.kind for e in await world.ledger.entries("F")] == [
        "deposit",
        "hold",
        "charge",
        "release",
    ]
    (failed,) = world.events.of("autopay")
    assert failed.data["status"] == "failed" and failed.data["reason"] == "card_declined"
    assert await world.redis.hlen("billing:funding:pending") == 0


async def test_autopay_interrupted_is_resumed_once(world: World) -> None:
    await world.account("F", 600)
    await world.biller.set_autopay("F", AutoPaySettings(True, 1000))
    world.processor.raise_error = ConnectionError("processor down")
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    await world.biller.settle(CallCharge("c1", "F", 600, "hangup", RATE))
    await world.biller.drain()
    assert await world.available("F") == 440
    assert await world.redis.hlen("billing:funding:pending") == 1
    world.processor.raise_error = None
    await asyncio.gather(world.biller.resume_pending(), world.biller.resume_pending())
    assert await world.available("F") == 1440
    assert len(world.processor.succeeded()) == 1
    assert await world.redis.hlen("billing:funding:pending") == 0


async def test_autopay_settings_are_validated(world: World) -> None:
    for bad in (
        AutoPaySettings(True, None),
        AutoPaySettings(True, 499),
        AutoPaySettings(True, 550),
    ):
        with pytest.raises(BillingError):
            await world.biller.set_autopay("F", bad)
    await world.biller.set_autopay("F", AutoPaySettings(True, 10_000))
    assert await world.biller.autopay_settings("F") == AutoPaySettings(True, 10_000)


async def test_close_refunds_and_blocks(world: World) -> None:
    await world.account("F", 1000)
    await world.biller.authorize("c1", "F", RATE, MAX_S)
    with pytest.raises(BillingError) as busy:
        await world.biller.close("F")
    assert busy.value.code == "call_in_progress"
    await world.biller.settle(CallCharge("c1", "F", 60, "hangup", RATE))
    entry = await world.biller.close("F")
    assert entry.kind == "refund" and entry.amount_cents == 1000 - RATE
    assert (await world.biller.close("F")).seq == entry.seq  # a retry is the same close
    b = await world.ledger.balance("F")
    assert (b.status, b.balance_cents, b.refunds_cents) == ("closed", 0, 1000 - RATE)
    assert [p.amount_cents for p in world.processor.succeeded("refund")] == [1000 - RATE]
    assert (await world.biller.authorize("c2", "F", RATE, MAX_S)).allowed_seconds == 0
    with pytest.raises(BillingError) as closed:
        await world.biller.deposit("F", 500, "k1")
    assert closed.value.code == "account_closed"
    assert world.processor.succeeded("charge") == []


async def test_deposit_is_paid_once_per_key(world: World) -> None:
    await world.account("F", 0)
    entries = await asyncio.gather(*(world.biller.deposit("F", 500, "key-1") for _ in range(5)))
    assert len({e.seq for e in entries}) == 1
    assert await world.available("F") == 500
    assert len(world.processor.succeeded()) == 1
    with pytest.raises(BillingError) as conflict:
        await world.biller.deposit("F", 700, "key-1")
    assert conflict.value.code == "idempotency_conflict"
    world.processor.fail_with = "insufficient_funds"
    with pytest.raises(BillingError) as declined:
        await world.biller.deposit("F", 700, "key-2")
    assert declined.value.code == "payment_failed"
    assert await world.available("F") == 500


class ClosingProcessor(FakeProcessor):
    """A processor that is slow enough for the family to close the account mid-payment."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    async def charge(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        result = await super().charge(family_id, amount_cents, idempotency_key)
        await self.ledger.close(family_id, f"close:{family_id}")
        return result


async def test_a_deposit_racing_a_close_is_given_back(redis: Redis) -> None:
    ledger = Ledger(redis)
    processor = ClosingProcessor(ledger)
    biller = Biller(redis, ledger, HookBus(), processor=processor)
    await ledger.deposit("F", 300, "opening")
    with pytest.raises(BillingError) as closed:
        await biller.deposit("F", 500, "k1")
    assert closed.value.code == "account_closed"
    assert [p.amount_cents for p in processor.succeeded("charge")] == [500]
    assert [p.amount_cents for p in processor.succeeded("refund")] == [500]  # the reversal
    assert await redis.hlen("billing:funding:pending") == 0
    assert (await ledger.balance("F")).deposits_cents == 300


async def test_an_interrupted_deposit_is_finished_once(world: World) -> None:
    await world.account("F", 0)
    world.processor.raise_error = ConnectionError("processor timed out")
    with pytest.raises(ConnectionError):
        await world.biller.deposit("F", 500, "k1")
    assert await world.available("F") == 0
    world.processor.raise_error = None
    await world.biller.resume_pending()
    again = await world.biller.deposit("F", 500, "k1")  # the app retries with its key
    assert again.amount_cents == 500 and await world.available("F") == 500
    assert len(world.processor.succeeded()) == 1
    assert len({e.id for e in world.events.of("deposit")}) == 1
    with pytest.raises(BillingError):
        await world.biller.deposit("F", 600, "k1")
