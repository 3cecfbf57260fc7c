"""The ledger's invariants, recomputed from what is stored: an audit of one account.

Used by the ledger's property tests and by the fault suite (:mod:`loadtest.faults`) after every
fault. Returns what is wrong (an empty list when the account is sound) rather than raising, so a
caller can report every broken rule at once:

- ``balance = deposits + credits - charges - refunds`` and ``available = balance - held >= 0``;
- the holds still out add up to ``held``, and none is negative;
- replaying the entries in order gives each entry's running balance and held amount, and the
  account's totals;
- a ref never applied twice: its entries are one run (a charge plus the release of the rest of
  its hold at most);
- a plain release frees exactly the hold it names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from redis.asyncio import Redis

from billing_hooks.money.ledger import Ledger, LedgerEntry
from billing_hooks.redis_keys import ACCOUNT_HOLDS
from core.redis_text import text


@dataclass(frozen=True)
class Audit:
    entries: list[LedgerEntry]
    problems: list[str]


def release_problems(entries: list[LedgerEntry]) -> list[str]:
    """A plain release entry's amount is the hold it freed."""
    holds: dict[str, int] = {}
    problems: list[str] = []
    for e in entries:
        if e.kind == "hold":
            holds[e.hold_id] = e.amount_cents
        elif e.kind == "release" and e.ref.startswith("release:"):
            if holds.get(e.hold_id) != e.amount_cents:
                problems.append(
                    f"release #{e.seq} frees {e.amount_cents}, its hold was {holds.get(e.hold_id)}"
                )
    return problems


def _replay(entries: list[LedgerEntry]) -> tuple[int, int, dict[str, int], list[str]]:
    """(balance, held, totals by kind, problems) from the entries alone."""
    bal = held = 0
    totals: dict[str, int] = defaultdict(int)
    problems: list[str] = []
    for seq, e in enumerate(entries, start=1):
        if e.seq != seq or e.amount_cents < 0:
            problems.append(f"entry {seq} has seq {e.seq} and amount {e.amount_cents}")
        if e.kind in ("deposit", "autopay", "credit"):
            bal += e.amount_cents
        elif e.kind == "refund":
            bal -= e.amount_cents
        elif e.kind == "charge":
            bal -= e.amount_cents
            held -= e.amount_cents if e.hold_id else 0
        elif e.kind == "hold":
            held += e.amount_cents
        elif e.kind == "release":
            held -= e.amount_cents
        totals["deposit" if e.kind == "autopay" else e.kind] += e.amount_cents
        if (e.balance_cents, e.held_cents) != (bal, held):
            problems.append(
                f"entry #{e.seq} says {e.balance_cents}/{e.held_cents} held, "
                f"replay gives {bal}/{held}"
            )
        if bal - held < 0:
            problems.append(f"entry #{e.seq} overdraws: balance {bal}, held {held}")
    return bal, held, totals, problems


def _ref_problems(entries: list[LedgerEntry]) -> list[str]:
    by_ref: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in entries:
        by_ref[e.ref].append(e)
    problems: list[str] = []
    for ref, group in by_ref.items():
        seqs = [e.seq for e in group]
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            problems.append(f"ref {ref} applied more than once (entries {seqs})")
        elif len(group) > 1 and [e.kind for e in group] != ["charge", "release"]:
            problems.append(f"ref {ref} made entries {[e.kind for e in group]}")
    return problems


async def audit_account(ledger: Ledger, redis: Redis, account: str) -> Audit:
    """Every invariant of ``account``, recomputed from Redis."""
    b = await ledger.balance(account)
    entries = await ledger.entries(account)
    problems: list[str] = []
    if b.balance_cents != b.deposits_cents + b.credits_cents - b.charges_cents - b.refunds_cents:
        problems.append(f"balance {b.balance_cents} is not deposits + credits - charges - refunds")
    if b.held_cents < 0 or b.available_cents < 0:
        problems.append(f"held {b.held_cents}, available {b.available_cents}")
    holds = await redis.hgetall(ACCOUNT_HOLDS(account))
    negative = sorted(text(k) for k, v in holds.items() if int(v) < 0)
    if negative:
        problems.append(f"holds {negative} are negative")
    if sum(int(v) for v in holds.values()) != b.held_cents:
        problems.append(
            f"holds out add up to {sum(int(v) for v in holds.values())}, held is {b.held_cents}"
        )
    bal, held, totals, replay = _replay(entries)
    problems += replay
    if (bal, held) != (b.balance_cents, b.held_cents):
        problems.append(
            f"replay ends at {bal}/{held} held, the account says {b.balance_cents}/{b.held_cents}"
        )
    for kind, total in (
        ("deposit", b.deposits_cents),
        ("credit", b.credits_cents),
        ("charge", b.charges_cents),
        ("refund", b.refunds_cents),
    ):
        if totals[kind] != total:
            problems.append(f"{kind} entries add up to {totals[kind]}, the account says {total}")
    problems += _ref_problems(entries) + release_problems(entries)
    return Audit(entries, [f"{account}: {p}" for p in problems])
