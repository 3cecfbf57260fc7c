"""Ledger properties under random operations, sequential and concurrent, on a real Redis.

Sequentially, the ledger matches a small Python model entry for entry. Concurrently (batches run
with asyncio.gather, so Redis picks the order), the invariants hold, every entry's running
balance replays from the one before, and no ref ever applies twice.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from billing_hooks.money.invariants import audit_account
from billing_hooks.money.ledger import Ledger, LedgerEntry, LedgerError

REFS = [f"r{i}" for i in range(30)]
HOLDS = [f"h{i}" for i in range(4)]
amounts = st.one_of(st.integers(0, 3000), st.sampled_from([0, 1, 999, 1000, 1001, 2500]))

Op = tuple[Any, ...]

_by_kind: dict[str, st.SearchStrategy[Op]] = {
    "hold": st.tuples(st.just("hold"), st.sampled_from(HOLDS), amounts),
    "release": st.tuples(st.just("release"), st.sampled_from(HOLDS)),
    "settle": st.tuples(
        st.just("settle"), st.sampled_from(HOLDS), amounts, st.sampled_from(REFS), st.booleans()
    ),
    "close": st.tuples(st.just("close"), st.sampled_from(REFS)),
}
for _kind in ("deposit", "autopay", "credit", "refund", "charge"):
    _by_kind[_kind] = st.tuples(st.just(_kind), st.sampled_from(REFS), amounts)
# Weighted so that a program gets well into holds and spending before it (rarely) closes.
_KINDS = ["deposit"] * 2 + ["autopay", "credit"] + ["refund", "charge"] * 2
_KINDS += ["hold"] * 3 + ["release"] * 2 + ["settle"] * 3 + ["close"]
ops: st.SearchStrategy[Op] = st.sampled_from(_KINDS).flatmap(_by_kind.__getitem__)

PROPS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


async def run(ledger: Ledger, acct: str, op: Op) -> LedgerEntry | LedgerError:
    kind = op[0]
    try:
        if kind in ("deposit", "autopay", "credit", "refund", "charge"):
            _, ref, amount = op
            method = getattr(ledger, kind)
            return await method(acct, amount, ref)  # type: ignore[no-any-return]
        if kind == "hold":
            return await ledger.hold(acct, str(op[1]), int(op[2]))
        if kind == "release":
            return await ledger.release(acct, str(op[1]))
        if kind == "settle":
            _, hold_id, amount, ref, void = op
            return await ledger.charge(
                acct, int(amount), str(ref), hold_id=str(hold_id), void_missing_hold=bool(void)
            )
        return await ledger.close(acct, str(op[1]))
    except LedgerError as exc:
        return exc


@dataclass
class Model:
    """The ledger's rules, in Python: the oracle for sequential runs."""

    bal: int = 0
    held: int = 0
    closed: bool = False
    holds: dict[str, int] = field(default_factory=dict)
    refs: set[str] = field(default_factory=set)
    entries: list[tuple[str, int, int, int, str]] = field(default_factory=list)

    def _entry(self, kind: str, amount: int, ref: str) -> None:
        self.entries.append((kind, amount, self.bal, self.held, ref))

    def apply(self, op: Op) -> str:
        kind = op[0]
        ref = {"hold": f"hold:{op[1]}", "release": f"release:{op[1]}"}.get(kind) or str(
            op[3] if kind == "settle" else op[1]
        )
        if ref in self.refs:
            return "dup"
        if self.closed and kind != "release" and kind != "settle":
            return "closed"
        amount = int(op[2]) if len(op) > 2 else 0
        if kind in ("deposit", "autopay", "credit"):
            self.bal += amount
            self._entry(kind, amount, ref)
        elif kind in ("refund", "charge"):
            if self.bal - self.held < amount:
                return "insufficient_funds"
            self.bal -= amount
            self._entry(kind, amount, ref)
        elif kind == "hold":
            if str(op[1]) in self.holds:
                return "duplicate_hold"
            if self.bal - self.held < amount:
                return "insufficient_funds"
            self.held += amount
            self.holds[str(op[1])] = amount
            self._entry("hold", amount, ref)
        elif kind == "release":
            if str(op[1]) not in self.holds:
                return "unknown_hold"
            released = self.holds.pop(str(op[1]))
            self.held -= released
            self._entry("release", released, ref)
        elif kind == "settle":
            hold_id = str(op[1])
            if hold_id not in self.holds:
                if op[4]:
                    self.refs.update({ref, f"hold:{hold_id}"})
                    return "void"
                return "unknown_hold"
            h = self.holds[hold_id]
            if amount > h:
                return "exceeds_hold"
            del self.holds[hold_id]
            if amount > 0 or h == 0:
                self.bal -= amount
                self.held -= amount
                self._entry("charge", amount, ref)
            if h - amount > 0:
                self.held -= h - amount
                self._entry("release", h - amount, ref)
        else:  # close
            if self.held > 0 or self.holds:
                return "holds_outstanding"
            refunded, self.bal, self.closed = self.bal, 0, True
            self._entry("refund", refunded, ref)
        self.refs.add(ref)
        return "ok"


async def check_invariants(ledger: Ledger, redis: Redis, acct: str) -> list[LedgerEntry]:
    """Every ledger invariant (:func:`billing_hooks.money.invariants.audit_account`) holds."""
    audit = await audit_account(ledger, redis, acct)
    assert not audit.problems, audit.problems
    return audit.entries


@given(st.integers(0, 5000), st.lists(st.tuples(ops, st.booleans()), min_size=15, max_size=50))
@PROPS
async def test_sequential_matches_the_model(
    redis: Redis, opening: int, program: list[tuple[Op, bool]]
) -> None:
    ledger, acct, model = Ledger(redis), f"acct-{uuid.uuid4().hex}", Model()
    steps = [op for op, retry in program for op in ([op, op] if retry else [op])]
    for op in [("deposit", "opening", opening), *steps]:
        outcome = await run(ledger, acct, op)
        expected = model.apply(op)
        if isinstance(outcome, LedgerError):
            assert outcome.reason == expected, (op, outcome.reason, expected)
        else:
            assert expected in ("ok", "dup", "void"), (op, expected)
            assert outcome.void == (expected == "void") or expected == "dup"
    entries = await check_invariants(ledger, redis, acct)
    got = [(e.kind, e.amount_cents, e.balance_cents, e.held_cents, e.ref) for e in entries]
    assert got == model.entries
    status = (await ledger.balance(acct)).status
    assert (status == "closed") == model.closed


@given(
    st.lists(
        st.lists(st.tuples(ops, st.booleans()), min_size=2, max_size=8), min_size=1, max_size=8
    )
)
@PROPS
async def test_concurrent_batches_keep_the_invariants(
    redis: Redis, batches: list[list[tuple[Op, bool]]]
) -> None:
    ledger, acct = Ledger(redis), f"acct-{uuid.uuid4().hex}"
    await ledger.deposit(acct, 5000, "opening")
    for batch in batches:
        # Each op, and a retry of it when flagged, all racing in one gather.
        calls = [op for op, retry in batch for op in ([op, op] if retry else [op])]
        results = await asyncio.gather(*(run(ledger, acct, op) for op in calls))
        for op, result in zip(calls, results, strict=True):
            if isinstance(result, LedgerError):
                assert result.reason in {
                    "insufficient_funds", "unknown_hold", "exceeds_hold", "duplicate_hold",
                    "closed", "holds_outstanding",
                }, (op, result.reason)  # fmt: skip
        await check_invariants(ledger, redis, acct)


async def test_a_retried_ref_applies_once(redis: Redis) -> None:
    ledger = Ledger(redis)
    results = await asyncio.gather(*(ledger.deposit("A", 700, "dep-1") for _ in range(20)))
    assert len({r.seq for r in results}) == 1
    await ledger.hold("A", "call-1", 500)
    settles = await asyncio.gather(
        *(ledger.charge("A", 100 + i, "settle:call-1", hold_id="call-1") for i in range(10))
    )
    assert len({(s.seq, s.kind, s.amount_cents) for s in settles}) == 1
    b = await ledger.balance("A")
    assert (b.balance_cents, b.held_cents, b.charges_cents) == (
        700 - b.charges_cents,
        0,
        b.charges_cents,
    )
    assert 100 <= b.charges_cents <= 109
    assert [e.kind for e in await ledger.entries("A")] == ["deposit", "hold", "charge", "release"]


async def test_held_money_cannot_be_spent_or_refunded(redis: Redis) -> None:
    ledger = Ledger(redis)
    await ledger.deposit("B", 1000, "d")
    await ledger.hold("B", "call", 800)
    for spend in (ledger.refund, ledger.charge):
        try:
            await spend("B", 201, f"{spend.__name__}-1")
            raise AssertionError("spent held money")
        except LedgerError as exc:
            assert exc.reason == "insufficient_funds"
    await ledger.refund("B", 200, "r")
    assert (await ledger.balance("B")).available_cents == 0
