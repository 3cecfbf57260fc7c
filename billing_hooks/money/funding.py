"""Money in and out of accounts through the payment processor, once per key, crash-safe.

A funding (a deposit or an AutoPay) is an *intent* kept in Redis from before the processor is
called until the ledger entry exists, so ``resume`` can finish what a crash or an outage
interrupted. The processor and the ledger are both idempotent by key, so finishing an intent
twice moves money once. If the account closed meanwhile, the payment is given straight back
(a ``:reversal`` refund with its own idempotency key). A close-out refund is likewise pending
until the processor has paid it out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from billing_hooks import redis_keys as keys
from billing_hooks.durability import run_durably
from billing_hooks.money.ledger import Ledger, LedgerEntry, LedgerError
from billing_hooks.money.payments import PaymentProcessor
from core.redis_text import text

PAYOUT_GRACE_S = 300.0  # a payout mark without its close entry is forgotten after this

log = logging.getLogger(__name__)

FUNDING_PENDING: Final = keys.FUNDING_PENDING()
FUNDING_ATTEMPTED: Final = keys.FUNDING_ATTEMPTED()
PAYOUT_PENDING: Final = keys.PAYOUT_PENDING()
FundingKind = Literal["deposit", "autopay"]


class BillingError(Exception):
    """A refused account operation; nothing changed. ``code`` is machine-readable."""

    def __init__(self, code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or code


class Funding:
    def __init__(self, redis: Redis, ledger: Ledger, processor: PaymentProcessor) -> None:
        self._redis = redis
        self._ledger = ledger
        self.processor = processor

    async def fund(
        self,
        kind: FundingKind,
        family_id: str,
        amount: int,
        key: str,
        ref: str,
        then: Callable[[LedgerEntry], Awaitable[None]] | None = None,
    ) -> LedgerEntry:
        """Charge ``amount`` (processor key ``key``) and credit it (ledger ref ``ref``), once;
        ``then`` (the funding's billing event) runs before the intent is done with.

        Raises :class:`BillingError` ``account_closed``, ``payment_failed`` or
        ``idempotency_conflict``; any other failure (a ledger entry or an event that no replica
        confirmed: ``NotDurable``) leaves the intent pending for ``resume``.
        """
        done = await self._ledger.find(family_id, ref, confirmed=True)
        if done is not None:
            if then is not None:
                await then(done)
            await self._finish(key)
            return done
        await self.intend(kind, family_id, amount, key, ref)
        attempted = await self._redis.hexists(FUNDING_ATTEMPTED, key)
        if not attempted and (await self._ledger.balance(family_id)).status == "closed":
            await self._finish(key)
            raise BillingError("account_closed", "this account is closed")
        await self._redis.hset(FUNDING_ATTEMPTED, key, 1)
        # An attempt before this one may already have charged: the same key charges once.
        paid = await self.processor.charge(family_id, amount, key)
        if not paid.ok:
            await self._finish(key)
            raise BillingError(
                "payment_failed", f"the payment was declined: {paid.reason}", paid.reason
            )
        apply = self._ledger.deposit if kind == "deposit" else self._ledger.autopay
        try:
            entry = await apply(family_id, amount, ref, meta={"payment": paid.reference})
        except LedgerError as exc:
            if exc.reason != "closed":
                raise
            back = await self.processor.refund(family_id, amount, f"{key}:reversal")
            if not back.ok:  # stays pending: resume tries the reversal again
                log.error("funding %s: account closed, reversal refused: %s", key, back.reason)
                raise BillingError("account_closed", "this account is closed") from None
            await self._finish(key)
            raise BillingError(
                "account_closed", "this account is closed; the payment was returned"
            ) from None
        if then is not None:
            await then(entry)
        await self._finish(key)
        return entry

    async def intend(
        self, kind: FundingKind, family_id: str, amount: int, key: str, ref: str
    ) -> None:
        """Record the intent durably (before anything else happens); a key already in use for
        a different payment is an ``idempotency_conflict``."""
        intent = {"kind": kind, "family_id": family_id, "amount_cents": amount, "ref": ref}

        async def queue(pipe: Pipeline) -> None:
            pipe.hsetnx(FUNDING_PENDING, key, json.dumps(intent))
            pipe.hget(FUNDING_PENDING, key)

        # Behind Sentinel, on a replica before the processor is asked for money.
        done = await run_durably(self._redis, queue)
        raw = done.results[1]
        if raw is not None and json.loads(raw) != intent:
            raise BillingError("idempotency_conflict", "this key is in use for another payment")
        done.check(f"the payment intent {key}")

    async def _finish(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(FUNDING_PENDING, key)
            pipe.hdel(FUNDING_ATTEMPTED, key)
            await pipe.execute()

    async def pending_fundings(self) -> list[tuple[str, dict[str, Any]]]:
        raw = await self._redis.hgetall(FUNDING_PENDING)
        return [(text(k), json.loads(v)) for k, v in raw.items()]

    async def close(self, family_id: str) -> LedgerEntry:
        """Refund the whole balance on the ledger, close the account, and pay the refund out."""
        ref = f"close:{family_id}"
        mark = json.dumps({"family_id": family_id, "at": time.time()})
        await self._redis.hset(PAYOUT_PENDING, ref, mark)
        try:
            entry = await self._ledger.close(family_id, ref)
        except LedgerError as exc:
            if not await self._ledger.has_ref(family_id, ref):
                await self._redis.hdel(PAYOUT_PENDING, ref)
            if exc.reason == "holds_outstanding":
                raise BillingError("call_in_progress", "a call is in progress") from None
            if exc.reason == "closed":
                raise BillingError("account_closed", "this account is already closed") from None
            raise
        await self.payout(family_id, ref, entry.amount_cents)
        return entry

    async def payout(self, family_id: str, ref: str, amount: int) -> bool:
        """Pay a close-out refund to the family; False (left pending) if it did not go through."""
        try:
            paid = await self.processor.refund(family_id, amount, ref) if amount else None
        except Exception:
            log.exception("refund %s of %d cents not paid out yet; left pending", ref, amount)
            return False
        if paid is not None and not paid.ok:
            log.error("refund %s of %d cents refused: %s; left pending", ref, amount, paid.reason)
            return False
        await self._redis.hdel(PAYOUT_PENDING, ref)
        return True

    async def resume_payouts(self) -> int:
        payouts = await self._redis.hgetall(PAYOUT_PENDING)
        for raw_ref, raw_mark in payouts.items():
            ref, mark = text(raw_ref), json.loads(raw_mark)
            family_id, marked_at = str(mark["family_id"]), float(mark["at"])
            entry = await self._ledger.find(family_id, ref)
            if entry is not None:
                await self.payout(family_id, ref, entry.amount_cents)
            elif time.time() - marked_at > PAYOUT_GRACE_S:
                # The close never happened (a close still in flight is younger than this).
                await self._redis.hdel(PAYOUT_PENDING, ref)
        return len(payouts)
