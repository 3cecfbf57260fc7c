"""AutoPay: a family's standing top-up, funded once for each spend that leaves its balance low.

After a spend (a call settled) leaves the balance at or under :data:`LOW_BALANCE_CENTS`, a
``low_balance`` event goes out, and with AutoPay on, the family's amount is funded through the
processor. The funding is an intent kept in Redis before the processor is asked
(:class:`billing_hooks.money.funding.Funding`), keyed by the spend that triggered it, so a crash
or a retried settlement funds it exactly once (``resume`` finishes one a crash interrupted).
The funding itself runs in the background: the settlement does not wait for the processor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from billing_hooks.hooks import EventType
from billing_hooks.money.funding import BillingError, Funding
from billing_hooks.money.payments import PAYMENTS_UNAVAILABLE
from billing_hooks.redis_keys import AUTOPAY
from core.redis_text import text
from core.tasks import TaskPool

log = logging.getLogger(__name__)

LOW_BALANCE_CENTS = 500
AUTOPAY_MIN_CENTS = 500
AUTOPAY_MAX_CENTS = 10_000

Emit = Callable[[EventType, dict[str, Any], str], Awaitable[None]]  # type, data, event id


@dataclass(frozen=True)
class AutoPaySettings:
    enabled: bool = False
    amount_cents: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "amount_cents": self.amount_cents}


def check_autopay_amount(amount_cents: int) -> None:
    if (
        not isinstance(amount_cents, int)
        or isinstance(amount_cents, bool)
        or not AUTOPAY_MIN_CENTS <= amount_cents <= AUTOPAY_MAX_CENTS
        or amount_cents % 100
    ):
        raise BillingError(
            "invalid_amount",
            f"AutoPay amount must be whole dollars from $5 to $100 (500..10000 cents, "
            f"a multiple of 100), got {amount_cents!r}",
        )


def need_payments(available: bool) -> None:
    """Refuse what takes money through the processor when this server has none."""
    if not available:
        raise BillingError(
            PAYMENTS_UNAVAILABLE,
            "payments are unavailable: this server has no payment processor configured",
        )


class AutoPay:
    """All Redis access for the families' AutoPay settings, and the fundings they start."""

    def __init__(self, redis: Redis, funding: Funding, emit: Emit, *, payments: bool) -> None:
        """``emit``: publishes a billing event (a hook's failure logged, not raised);
        ``payments``: whether this server has a payment processor."""
        self._redis = redis
        self._funding = funding
        self._emit = emit
        self._payments = payments
        self._tasks = TaskPool("autopay")

    async def settings(self, family_id: str) -> AutoPaySettings:
        raw = {text(k): text(v) for k, v in (await self._redis.hgetall(AUTOPAY(family_id))).items()}
        amount = raw.get("amount_cents")
        return AutoPaySettings(raw.get("enabled") == "1", int(amount) if amount else None)

    async def set(self, family_id: str, settings: AutoPaySettings) -> None:
        if settings.enabled:
            need_payments(self._payments)
        if settings.amount_cents is not None:
            check_autopay_amount(settings.amount_cents)
        elif settings.enabled:
            raise BillingError("invalid_amount", "enabling AutoPay needs an amount_cents")
        mapping: dict[FieldT, EncodableT] = {"enabled": "1" if settings.enabled else "0"}
        if settings.amount_cents is not None:
            mapping["amount_cents"] = settings.amount_cents
        await self._redis.hset(AUTOPAY(family_id), mapping=mapping)

    async def disable(self, family_id: str) -> None:
        await self._redis.hset(AUTOPAY(family_id), "enabled", "0")

    async def after_spend(self, family_id: str, balance: int, trigger: str) -> None:
        """A spend (``trigger``: what it was, e.g. ``settle:{call_id}``) left ``balance``."""
        if balance > LOW_BALANCE_CENTS:
            return
        data = {"family_id": family_id, "balance_cents": balance, "trigger": trigger}
        await self._emit("low_balance", data | {"threshold_cents": LOW_BALANCE_CENTS},
                         f"low_balance:{family_id}:{trigger}")  # fmt: skip
        settings = await self.settings(family_id)
        if not settings.enabled or settings.amount_cents is None or not self._payments:
            return
        key = f"autopay:{family_id}:{trigger}"  # processor key, ledger ref, event id: no Redis key
        try:  # durable before anything else: resume_pending() finishes it after a crash
            await self._funding.intend("autopay", family_id, settings.amount_cents, key, key)
        except BillingError:  # a retried settlement after an amount change: the first stands
            log.info("AutoPay %s already intended with another amount", key)
            return
        amount = settings.amount_cents
        self._tasks.spawn(key, lambda: self.fund(family_id, amount, key))

    async def fund(self, family_id: str, amount: int, key: str) -> None:
        """Fund ``amount`` once for this trigger (processor key and ledger ref ``key``)."""
        data: dict[str, Any] = {"family_id": family_id, "amount_cents": amount}
        try:
            entry = await self._funding.fund("autopay", family_id, amount, key, key)
        except BillingError as exc:
            log.warning("AutoPay %s of %d cents failed: %s", key, amount, exc.message)
            failed = {"status": "failed", "code": exc.code, "reason": exc.detail}
            await self._emit("autopay", data | failed, key)
            return
        except Exception:
            log.exception("AutoPay %s interrupted; pending for resume_pending()", key)
            return
        data |= {"status": "funded", "balance_cents": entry.available_cents}
        await self._emit("autopay", data | {"payment": entry.meta.get("payment")}, key)

    async def drain(self) -> None:
        """Wait for the fundings started here."""
        await self._tasks.join()
