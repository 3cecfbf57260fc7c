"""Deposit receipts, and the payment method each deposit was paid with.

A receipt is read from the ledger, never kept beside it: each ``deposit`` or ``autopay`` entry
is one receipt (``reference`` ``R`` + its sequence number, the amount, the time, the balance
after it, the processor's payment reference), named with the payment method that paid it. That
method is recorded before the processor is asked for money: by the deposit's ledger ref (a
deposit through the page), else the family's method on file at that moment (AutoPay), so a
receipt opened again later says what it said the first time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from billing_hooks.money.ledger import Ledger, LedgerEntry
from billing_hooks.money.payments import PaymentMethod
from billing_hooks.redis_keys import PAYMENT_METHOD_USED, PAYMENT_METHODS
from core.redis_text import text

RECEIPT_KINDS = ("deposit", "autopay")
_REFERENCE = re.compile(r"^R(\d{1,9})$")
SEED_REF = "seed:opening-balance"
MAX_METHOD_HISTORY = 50


def reference_of(seq: int) -> str:
    return f"R{seq:06d}"


def seq_of(reference: str) -> int | None:
    match = _REFERENCE.match(reference)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


@dataclass(frozen=True)
class Receipt:
    reference: str
    kind: str  # deposit | autopay
    amount_cents: int
    balance_cents: int
    at: float
    method: str  # "card ending 4242"
    payment_reference: str  # the processor's
    ledger_ref: str

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "kind": self.kind,
            "description": "AutoPay" if self.kind == "autopay" else "Deposit",
            "amount_cents": self.amount_cents,
            "balance_cents": self.balance_cents,
            "at": self.at,
            "method": self.method,
            "payment_reference": self.payment_reference,
        }


class PaymentMethods:
    """The family's payment method on file (with its history) and the one each deposit used."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock

    @staticmethod
    def _history(family_id: str) -> str:
        return PAYMENT_METHODS(family_id)

    @staticmethod
    def _used(family_id: str) -> str:
        return PAYMENT_METHOD_USED(family_id)

    async def put_on_file(self, family_id: str, method: PaymentMethod) -> None:
        item = json.dumps({"at": self._clock(), **method.to_json()})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._history(family_id), item)
            pipe.ltrim(self._history(family_id), -MAX_METHOD_HISTORY, -1)
            await pipe.execute()

    async def on_file(self, family_id: str, at: float | None = None) -> dict[str, Any] | None:
        """The method on file now (or at ``at``): ``{"id", "brand", "last4", "label", "at"}``."""
        for raw in reversed(await self._redis.lrange(self._history(family_id), 0, -1)):
            item: dict[str, Any] = json.loads(raw)
            if at is None or float(item["at"]) <= at:
                return item
        return None

    async def used_for(self, family_id: str, ledger_ref: str, method: PaymentMethod) -> None:
        """Record that the deposit ``ledger_ref`` is paid with ``method`` (before charging)."""
        await self._redis.hset(self._used(family_id), ledger_ref, method.label)

    async def label_for(self, family_id: str, entry: LedgerEntry) -> str:
        if entry.ref == SEED_REF:
            return "opening balance"
        used = await self._redis.hget(self._used(family_id), entry.ref)
        if used is not None:
            return text(used)
        on_file = await self.on_file(family_id, entry.at)
        if on_file is not None:
            return str(on_file["label"])
        return "payment method on file"

    async def forget(self, family_id: str) -> None:
        """A closed account keeps no method on file (its receipts keep their labels)."""
        await self._redis.delete(self._history(family_id))


class Receipts:
    def __init__(self, ledger: Ledger, methods: PaymentMethods) -> None:
        self._ledger = ledger
        self._methods = methods

    async def of_entry(self, family_id: str, entry: LedgerEntry) -> Receipt:
        return Receipt(
            reference=reference_of(entry.seq),
            kind=entry.kind,
            amount_cents=entry.amount_cents,
            balance_cents=entry.balance_cents,
            at=entry.at,
            method=await self._methods.label_for(family_id, entry),
            payment_reference=str(entry.meta.get("payment") or ""),
            ledger_ref=entry.ref,
        )

    async def list(self, family_id: str, limit: int = 100) -> list[Receipt]:
        """The family's receipts, newest first."""
        entries = [e for e in await self._ledger.entries(family_id) if e.kind in RECEIPT_KINDS]
        return [await self.of_entry(family_id, e) for e in reversed(entries[-limit:])]

    async def get(self, family_id: str, reference: str) -> Receipt | None:
        seq = seq_of(reference)
        if seq is None:
            return None
        found = await self._ledger.entries(family_id, seq - 1, seq - 1)
        if not found or found[0].seq != seq or found[0].kind not in RECEIPT_KINDS:
            return None
        return await self.of_entry(family_id, found[0])
