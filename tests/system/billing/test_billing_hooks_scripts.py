"""Every script of billing_hooks/ (its .lua files) on its own, on the real Redis: the ledger
(its rules, its refusals and each of its invariants), the outbox's append and lease, the family
call history, and the allowance's reserve and settle. A refused input changes nothing: the
keyspace is dumped before and after."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from billing_hooks.money.invariants import audit_account
from billing_hooks.money.ledger import (
    MAX_AMOUNT_CENTS,
    Ledger,
    LedgerChange,
    LedgerEntry,
    LedgerError,
)
from billing_hooks.redis_keys import (
    ACCOUNT,
    ACCOUNT_ENTRIES,
    ACCOUNT_HOLDS,
    ACCOUNT_REFS,
    AGENCY_DAY,
    ALLOWANCE_CALL,
    ALLOWANCE_PERIOD,
    FAMILY_CALL_IDS,
    FAMILY_CALLS,
    OUTBOX,
)
from core.lua import script
from core.redis_text import text
from tests.redis_dump import dump

KEYS = Ledger.keys("F1")


def ledger_script(redis: Redis) -> AsyncScript:
    return redis.register_script(script("billing_hooks.money", "ledger.lua"))


def change(kind: Any, amount: int = 0, ref: str = "r", **more: Any) -> str:
    return LedgerChange(kind, amount, ref, at=1000.25, **more).to_json()


async def apply(run: AsyncScript, argv: str) -> list[Any]:
    raw = await run(keys=KEYS, args=[argv])
    return [x.decode() if isinstance(x, bytes) else x for x in raw]


def entry(raw: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(raw)
    return found


async def refused(redis: Redis, run: AsyncScript, argv: str, reason: str, detail: str = "") -> None:
    """``argv`` is refused with ``reason`` (and ``detail``) and nothing in Redis changes."""
    before = await dump(redis)
    assert await apply(run, argv) == ["err", reason, detail]
    assert await dump(redis) == before


async def account(redis: Redis) -> dict[str, str]:
    return {text(k): text(v) for k, v in (await redis.hgetall(ACCOUNT("F1"))).items()}


async def test_the_ledger_script_writes_entries_with_running_balances(redis: Redis) -> None:
    run = ledger_script(redis)
    status, raw = await apply(run, change("deposit", 1000, "d1", meta={"payment": "p1"}))
    assert status == "ok"
    assert entry(raw) == {
        "seq": 1,
        "kind": "deposit",
        "amount_cents": 1000,
        "balance_cents": 1000,
        "held_cents": 0,
        "ref": "d1",
        "at": 1000.25,
        "hold_id": "",
        "meta": {"payment": "p1"},
    }
    assert (await apply(run, change("hold", 600, "hold:c1", hold_id="c1")))[0] == "ok"
    assert await redis.hgetall(ACCOUNT_HOLDS("F1")) == {b"c1": b"600"}
    # A charge against the hold: the charge and the release of the rest, under one ref.
    status, raw = await apply(run, change("charge", 250, "settle:c1", hold_id="c1"))
    assert (status, entry(raw)["kind"], entry(raw)["amount_cents"]) == ("ok", "release", 350)
    made = [entry(e) for e in await redis.lrange(ACCOUNT_ENTRIES("F1"), 0, -1)]
    assert [(e["seq"], e["kind"], e["amount_cents"], e["balance_cents"], e["held_cents"]) for e in made] == [
        (1, "deposit", 1000, 1000, 0),
        (2, "hold", 600, 1000, 600),
        (3, "charge", 250, 750, 350),
        (4, "release", 350, 750, 0),
    ]  # fmt: skip
    assert not await redis.exists(ACCOUNT_HOLDS("F1"))
    assert await account(redis) == {
        "balance": "750",
        "held": "0",
        "deposits": "1000",
        "credits": "0",
        "charges": "250",
        "refunds": "0",
        "status": "open",
    }
    assert entry(await redis.hget(ACCOUNT_REFS("F1"), "settle:c1")) == made[-1]
    assert (await audit_account(Ledger(redis), redis, "F1")).problems == []


async def test_a_ref_is_applied_once(redis: Redis) -> None:
    run = ledger_script(redis)
    _, first = await apply(run, change("deposit", 500, "d1"))
    before = await dump(redis)
    # The same ref again, even for another kind and amount: the first entry, nothing written.
    assert await apply(run, change("deposit", 500, "d1")) == ["dup", first]
    assert await apply(run, change("refund", 100, "d1")) == ["dup", first]
    assert await dump(redis) == before


async def test_the_ledger_refusals_change_nothing(redis: Redis) -> None:
    run = ledger_script(redis)
    await apply(run, change("deposit", 1000, "d1"))
    await apply(run, change("hold", 600, "hold:c1", hold_id="c1"))
    await refused(redis, run, change("hold", 500, "hold:c2", hold_id="c2"), "insufficient_funds")
    await refused(redis, run, change("charge", 401, "x1"), "insufficient_funds")
    await refused(redis, run, change("refund", 401, "x2"), "insufficient_funds")
    await refused(redis, run, change("hold", 1, "hold:again", hold_id="c1"), "duplicate_hold")
    await refused(redis, run, change("release", 0, "release:c9", hold_id="c9"), "unknown_hold")
    await refused(redis, run, change("charge", 1, "settle:c9", hold_id="c9"), "unknown_hold")
    await refused(redis, run, change("charge", 601, "settle:c1", hold_id="c1"), "exceeds_hold")
    await refused(redis, run, change("close", 0, "close:1"), "holds_outstanding")
    # What LedgerChange never sends, refused by the script all the same.
    bad = {"kind": "deposit", "amount_cents": 5, "ref": "b", "at": 1, "hold_id": "", "meta": {}}
    for broken in (
        {**bad, "kind": "gift"},
        {**bad, "amount_cents": -5},
        {**bad, "amount_cents": 1.5},
        {**bad, "amount_cents": MAX_AMOUNT_CENTS + 1},
        {**bad, "ref": ""},
        {**bad, "at": "soon"},
        {**bad, "meta": "x"},
        {**bad, "kind": "hold"},  # no hold id
    ):
        before = await dump(redis)
        status, reason, _ = await apply(run, json.dumps(broken))
        assert (status, reason) in {("err", "invalid"), ("err", "unknown_kind")}, broken
        assert await dump(redis) == before
    await refused(redis, run, "not json", "invalid", "the change is not an object")


async def test_a_closed_account_settles_its_holds_and_nothing_else(redis: Redis) -> None:
    run = ledger_script(redis)
    await apply(run, change("deposit", 1000, "d1"))
    status, raw = await apply(run, change("close", 0, "close:1", meta={"close": True}))
    assert (status, entry(raw)["kind"], entry(raw)["amount_cents"]) == ("ok", "refund", 1000)
    assert (await account(redis))["status"] == "closed"
    assert (await account(redis))["balance"] == "0"
    await refused(redis, run, change("deposit", 100, "d2"), "closed")
    await refused(redis, run, change("hold", 0, "hold:c1", hold_id="c1"), "closed")
    # A release is not refused as closed (it settles a hold); this one has none to settle.
    await refused(redis, run, change("release", 0, "release:c1", hold_id="c1"), "unknown_hold")
    assert (await audit_account(Ledger(redis), redis, "F1")).problems == []


async def test_a_settlement_before_the_hold_voids_it(redis: Redis) -> None:
    run = ledger_script(redis)
    await apply(run, change("deposit", 1000, "d1"))
    entries_before = await redis.lrange(ACCOUNT_ENTRIES("F1"), 0, -1)
    status, marker = await apply(
        run, change("charge", 300, "settle:c1", hold_id="c1", void_missing_hold=True)
    )
    assert status == "ok"
    assert entry(marker)["seq"] == 0 and entry(marker)["meta"] == {"void": True}
    assert await redis.lrange(ACCOUNT_ENTRIES("F1"), 0, -1) == entries_before  # no entry
    # The racing connect's hold gets the void marker and reserves nothing.
    assert await apply(run, change("hold", 500, "hold:c1", hold_id="c1")) == ["dup", marker]
    assert not await redis.exists(ACCOUNT_HOLDS("F1"))
    assert (await account(redis))["held"] == "0"


async def broken_by_hand(redis: Redis, invariant: str) -> None:
    """An account of 1000 cents with 400 held, then edited by hand to break ``invariant``."""
    run = ledger_script(redis)
    await apply(run, change("deposit", 1000, "d1"))
    await apply(run, change("hold", 400, "hold:c1", hold_id="c1"))
    if invariant == "totals":
        await redis.hincrby(ACCOUNT("F1"), "deposits", 1)
    elif invariant == "holds":
        await redis.hset(ACCOUNT_HOLDS("F1"), "c2", 100)  # a hold that held counts not
    elif invariant == "negative hold":
        await redis.hset(ACCOUNT_HOLDS("F1"), mapping={"c1": 500, "c2": -100})
    elif invariant == "available":  # held above the balance, everything else agreeing
        await redis.hset(ACCOUNT("F1"), "held", 1200)
        await redis.hset(ACCOUNT_HOLDS("F1"), "c1", 1200)
        last = entry(await redis.lindex(ACCOUNT_ENTRIES("F1"), -1))
        await redis.lset(ACCOUNT_ENTRIES("F1"), -1, json.dumps(last | {"held_cents": 1200}))
    elif invariant == "entries":  # the last entry says another balance
        last = entry(await redis.lindex(ACCOUNT_ENTRIES("F1"), -1))
        await redis.lset(ACCOUNT_ENTRIES("F1"), -1, json.dumps(last | {"balance_cents": 900}))


@pytest.mark.parametrize(
    ("invariant", "name"),
    [
        ("totals", "totals"),
        ("holds", "holds"),
        ("negative hold", "holds"),
        ("available", "available"),
        ("entries", "entries"),
    ],
)
async def test_an_account_that_breaks_an_invariant_takes_no_change(
    redis: Redis, invariant: str, name: str
) -> None:
    await broken_by_hand(redis, invariant)
    assert (await audit_account(Ledger(redis), redis, "F1")).problems  # the audit sees it too
    run = ledger_script(redis)
    for argv in (
        change("deposit", 100, "d2"),
        change("hold", 1, "hold:c3", hold_id="c3"),
        change("release", 0, "release:c1", hold_id="c1"),
        change("charge", 100, "settle:c1", hold_id="c1"),
    ):
        await refused(redis, run, argv, "broken_invariant", name)


async def test_the_ledger_class_refuses_an_invalid_change_before_redis(redis: Redis) -> None:
    ledger = Ledger(redis, clock=lambda: 1000.0)
    for bad in (-1, MAX_AMOUNT_CENTS + 1, True, 2.5):
        with pytest.raises(LedgerError) as refusal:
            await ledger.deposit("F1", bad, "d1")  # type: ignore[arg-type]
        assert refusal.value.reason == "invalid"
    for kind, hold_id, ref in (("hold", "", "r"), ("release", "", "r"), ("deposit", "", "")):
        with pytest.raises(LedgerError):
            LedgerChange(kind, 0, ref, 1.0, hold_id)  # type: ignore[arg-type]
    with pytest.raises(LedgerError):
        await ledger.deposit("", 100, "d1")
    assert await dump(redis) == {}
    # A broken invariant reaches the caller as a LedgerError of its own reason.
    await broken_by_hand(redis, "totals")
    with pytest.raises(LedgerError) as refusal:
        await ledger.deposit("F1", 100, "d2")
    assert refusal.value.reason == "broken_invariant" and "totals" in str(refusal.value)
    entry_at = (await ledger.entries("F1"))[0]
    assert isinstance(entry_at, LedgerEntry) and entry_at.at == 1000.25


# -- the outbox ------------------------------------------------------------------------------


async def test_outbox_append_adds_an_event_id_once(redis: Redis) -> None:
    append = redis.register_script(script("billing_hooks", "outbox_append.lua"))
    keys = [OUTBOX.stream(), OUTBOX.seen("deposit:F1:k")]
    stream_id = await append(keys=keys, args=["deposit:F1:k", '{"n":1}', 60])
    assert stream_id
    rows: Any = await redis.xrange(OUTBOX.stream())
    assert rows == [(stream_id, {b"id": b"deposit:F1:k", b"body": b'{"n":1}'})]
    assert 0 < await redis.ttl(OUTBOX.seen("deposit:F1:k")) <= 60
    before = await dump(redis)
    assert await append(keys=keys, args=["deposit:F1:k", '{"n":2}', 60]) is None  # seen
    assert await dump(redis) == before
    bad: list[list[str | int]] = [["", "{}", 60], ["e2", "{}", 0], ["e2", "{}", "x"]]
    for args in bad:
        with pytest.raises(ResponseError, match="invalid"):
            await append(keys=[OUTBOX.stream(), OUTBOX.seen("e2")], args=args)
        assert await dump(redis) == before


async def test_outbox_lease_is_held_by_one_node_and_dropped_only_by_it(redis: Redis) -> None:
    take = redis.register_script(script("billing_hooks", "outbox_lease_take.lua"))
    drop = redis.register_script(script("billing_hooks", "outbox_lease_drop.lua"))
    lease = [OUTBOX.lease()]
    assert await take(keys=lease, args=["n1", 1000]) == 1
    assert await take(keys=lease, args=["n2", 60_000]) == 0
    assert await redis.get(OUTBOX.lease()) == b"n1" and await redis.pttl(OUTBOX.lease()) <= 1000
    assert await take(keys=lease, args=["n1", 60_000]) == 1  # renewed
    assert await redis.pttl(OUTBOX.lease()) > 1000
    before = await dump(redis)
    assert await drop(keys=lease, args=["n2"]) == 0
    refused_leases: list[list[str | int]] = [["", 1000], ["n2", 0]]
    for args in refused_leases:
        with pytest.raises(ResponseError, match="invalid"):
            await take(keys=lease, args=args)
    assert await dump(redis) == before
    assert await drop(keys=lease, args=["n1"]) == 1
    assert not await redis.exists(OUTBOX.lease())
    assert await take(keys=lease, args=["n2", 1000]) == 1  # free: the next node takes it


# -- the family call history -------------------------------------------------------------------


async def test_call_history_records_a_call_once(redis: Redis) -> None:
    record = redis.register_script(script("billing_hooks.metering", "call_history_record.lua"))
    keys = [FAMILY_CALLS("F1"), FAMILY_CALL_IDS("F1")]
    assert await record(keys=keys, args=["c1", '{"call_id":"c1"}']) == [1, 1]
    assert await record(keys=keys, args=["c2", '{"call_id":"c2"}']) == [1, 2]
    before = await dump(redis)
    assert await record(keys=keys, args=["c1", '{"call_id":"c1","again":1}']) == [0, 2]
    with pytest.raises(ResponseError, match="invalid"):
        await record(keys=keys, args=["", "{}"])
    assert await dump(redis) == before
    assert await redis.lrange(FAMILY_CALLS("F1"), 0, -1) == [
        b'{"call_id":"c2"}',
        b'{"call_id":"c1"}',
    ]
    assert await redis.smembers(FAMILY_CALL_IDS("F1")) == {b"c1", b"c2"}


# -- the allowance ----------------------------------------------------------------------------

PERIOD = ALLOWANCE_PERIOD("R1", "day", "2026-12-07")


async def test_allowance_reserve_grants_what_remains_once_per_call(redis: Redis) -> None:
    reserve = redis.register_script(script("billing_hooks.metering", "allowance_reserve.lua"))
    first = [ALLOWANCE_CALL("c1"), PERIOD]
    assert await reserve(keys=first, args=[600, 900, 3600]) == [b"reserved", 600, PERIOD.encode()]
    second = [ALLOWANCE_CALL("c2"), PERIOD]
    assert await reserve(keys=second, args=[600, 900, 3600]) == [b"reserved", 300, PERIOD.encode()]
    third = [ALLOWANCE_CALL("c3"), PERIOD]
    assert await reserve(keys=third, args=[600, 900, 3600]) == [b"reserved", 0, PERIOD.encode()]
    assert await redis.hgetall(PERIOD) == {b"reserved": b"900"}
    before = await dump(redis)
    assert await reserve(keys=first, args=[50, 900, 3600]) == [b"reserved", 600, PERIOD.encode()]
    assert await dump(redis) == before  # a retry: the first grant, nothing written
    unlimited = [ALLOWANCE_CALL("c4"), ALLOWANCE_PERIOD("R2", "week", "2026-12-07")]
    assert (await reserve(keys=unlimited, args=[5000, -1, 3600]))[:2] == [b"reserved", 5000]
    assert 0 < await redis.ttl(ALLOWANCE_CALL("c1")) <= 3600


async def test_allowance_settle_consumes_once_and_voids_a_missing_reservation(
    redis: Redis,
) -> None:
    reserve = redis.register_script(script("billing_hooks.metering", "allowance_reserve.lua"))
    settle = redis.register_script(script("billing_hooks.metering", "allowance_settle.lua"))
    board = AGENCY_DAY("FAC", "2026-12-07")
    await reserve(keys=[ALLOWANCE_CALL("c1"), PERIOD], args=[600, 900, 3600])
    keys = [ALLOWANCE_CALL("c1"), PERIOD, board]
    assert await settle(keys=keys, args=[700, 3600, 7200]) == [b"settled", 600]  # capped
    assert await redis.hgetall(PERIOD) == {b"reserved": b"0", b"used": b"600"}
    assert await redis.hgetall(board) == {b"agency_seconds": b"600", b"calls": b"1"}
    before = await dump(redis)
    assert await settle(keys=keys, args=[700, 3600, 7200]) == [b"settled", 600]
    assert await dump(redis) == before
    # Another period than the one reserved in: refused, nothing written.
    await reserve(keys=[ALLOWANCE_CALL("c2"), PERIOD], args=[100, 900, 3600])
    before = await dump(redis)
    other = [ALLOWANCE_CALL("c2"), ALLOWANCE_PERIOD("R1", "day", "2026-12-08"), board]
    with pytest.raises(ResponseError, match="period_mismatch"):
        await settle(keys=other, args=[50, 3600, 7200])
    assert await dump(redis) == before
    # Settled before it reserved: void, and the late reservation gets nothing.
    late = [ALLOWANCE_CALL("c3"), PERIOD, board]
    assert await settle(keys=late, args=[50, 3600, 7200]) == [b"void", 0]
    assert await reserve(keys=late[:2], args=[100, 900, 3600]) == [b"void", 0, b""]
    assert await redis.hget(PERIOD, "reserved") == b"100"  # c2's only
