"""Call billing: authorize at connect, settle once at the end, AutoPay, deposits, closing.

Every money movement is one atomic, ref-idempotent ledger script run, and every step after it
(call history, events, AutoPay) is idempotent too, so any step may be retried after a crash or
run concurrently on two nodes and the family is charged, funded or refunded exactly once:

- ``authorize`` places hold ``call_id`` (ref ``hold:{call_id}``) for the whole allowance; a retry
  returns the first allowance (kept in the hold entry's meta).
- ``settle`` charges against that hold with ref ``settle:{call_id}`` and releases the rest; a
  second or concurrent settle gets the first result back from the ledger. Settling a call with no
  hold voids the hold id, so a connect that lost the race to the end can never strand money.
- Events carry stable ids (``call.settled:{call_id}`` ...) and the outbox drops repeats.

Pricing plans (SPEC "Who pays"): ``authorize`` first reserves the call's part of the
resident's agency-paid allowance (:class:`billing_hooks.metering.allowance.Allowances`, once per call),
then holds only the paid part; ``settle`` consumes the reservation and charges the family in one
MULTI (under WATCH of the call's reservation), so the agency's part and the family's charge are
written together, exactly once, and agree.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, WatchError

from billing_hooks.durability import NotDurable, required, run_durably
from billing_hooks.hooks import BillingEvent, EventType, Hook
from billing_hooks.metering.allowance import Allowances
from billing_hooks.metering.call_history import FamilyCalls
from billing_hooks.metering.plans import FacilityPlan, PricingPlans
from billing_hooks.money.autopay import AutoPay, AutoPaySettings, need_payments
from billing_hooks.money.funding import BillingError, Funding
from billing_hooks.money.ledger import Ledger, LedgerEntry, LedgerError
from billing_hooks.money.payments import NoProcessor, PaymentProcessor
from billing_hooks.redis_keys import ALLOWANCE_CALL
from core import tariff
from core.facility_stats import local_day

log = logging.getLogger(__name__)

DEPOSIT_MIN_CENTS = 200
DEPOSIT_MAX_CENTS = 10_000


@dataclass(frozen=True)
class Authorization:
    """``allowed_seconds`` of talk, fixed at connect; 0 means end the call now (unbillable)."""

    allowed_seconds: int
    hold_cents: int
    free_seconds: int = 0  # of allowed_seconds, what the agency pays at most


@dataclass(frozen=True)
class CallCharge:
    """What settlement needs of an ended call: who pays, how long it talked at what rate, and
    what the family's statement says of it."""

    call_id: str
    family_id: str
    connected_seconds: int
    end_reason: str
    rate: int  # cents per minute, as placed (the hold's, fixed at connect, wins)
    facility_id: str = ""
    facility_name: str = ""
    resident_id: str = ""
    resident_name: str = ""
    started_at: float = 0.0
    connected_at: float = 0.0
    ended_at: float = 0.0


@dataclass(frozen=True)
class Settlement:
    charged_cents: int
    balance_cents: int
    agency_seconds: int = 0  # what the agency paid of the call


def _same_deposit(entry: LedgerEntry, amount: int) -> None:
    if entry.amount_cents != amount or entry.kind != "deposit":
        raise BillingError(
            "idempotency_conflict",
            "this Idempotency-Key was already used for a different deposit",
        )


async def _nothing(pipe: Any) -> None:
    """No write of its own: the barrier and WAIT that follow confirm the MULTI before them."""


class Biller:
    def __init__(
        self,
        redis: Redis,
        ledger: Ledger,
        hooks: Hook,
        *,
        processor: PaymentProcessor | None,
        plans: PricingPlans | None = None,
    ) -> None:
        """``processor`` None: no payments (deposits and AutoPay refused, nothing credited).
        ``plans``: the facilities' pricing plans; None: families pay every minute."""
        self._redis = redis
        self.plans = plans
        self.allowances = plans.allowances if plans is not None else Allowances(redis)
        self.ledger = ledger
        self.hooks = hooks
        self.payments_available = processor is not None
        self.processor: PaymentProcessor = processor if processor is not None else NoProcessor()
        self.funding = Funding(redis, ledger, self.processor)
        self.history = FamilyCalls(redis)
        self.autopay = AutoPay(redis, self.funding, self._emit, payments=self.payments_available)

    async def _emit(
        self, type: EventType, data: dict[str, Any], id: str, *, durable: bool = False
    ) -> None:
        """Publish an event; a hook's failure is logged, except that with ``durable`` an event
        the outbox may have lost (:class:`NotDurable`) fails the operation (retried by its key)."""
        try:
            await self.hooks.publish(BillingEvent.new(type, data, id))
        except NotDurable:
            if durable:
                raise
            log.warning("billing event %s may not have been kept", id)
        except Exception:
            log.exception("billing event %s could not be published", id)

    # -- calls -----------------------------------------------------------------------------

    async def _plan(self, facility_id: str) -> FacilityPlan:
        if self.plans is None:
            return FacilityPlan(tariff.FAMILY_PAYS, "UTC")
        return await self.plans.of(facility_id)

    async def authorize(
        self,
        call_id: str,
        family_id: str,
        rate: int,
        max_call_seconds: int,
        *,
        resident_id: str = "",
        facility_id: str = "",
    ) -> Authorization:
        """At connect: reserve the agency's part (the plan's allowance), fix the allowance
        (rule 4, both parts) and hold what the paid part can cost. Idempotent."""
        fp = await self._plan(facility_id)
        free: int | None = 0
        if fp.plan.metered or fp.plan.payer == "agency":
            reservation = await self.allowances.reserve(
                call_id, fp.plan, fp.timezone, resident_id or "-", max_call_seconds
            )
            if reservation.state != "reserved":  # settled before this connect got here
                return Authorization(0, 0)
            free = reservation.granted
        for _ in range(5):
            account = await self.ledger.balance(family_id)
            q = tariff.quote(fp.plan, max_call_seconds, max(0, account.available_cents), rate, free)
            allowed, hold = q.allowed_seconds, q.hold_cents
            meta = {"call_id": call_id, "allowed_seconds": allowed, "rate_cents_per_minute": rate}
            meta |= {"free_seconds": q.free_seconds, "payer": fp.plan.payer}
            try:
                entry = await self.ledger.hold(family_id, call_id, hold, meta=meta)
            except LedgerError as exc:
                if exc.reason == "insufficient_funds":
                    continue  # spent meanwhile: recompute from the new balance
                if exc.reason == "closed":
                    return Authorization(0, 0)
                raise
            if entry.void:  # the call was settled before this connect got here
                return Authorization(0, 0)
            auth = Authorization(
                int(entry.meta.get("allowed_seconds", 0)),
                entry.amount_cents,
                int(entry.meta.get("free_seconds", 0)),
            )
            await self._emit(
                "call.authorized",
                {"call_id": call_id, "family_id": family_id, "rate_cents_per_minute": rate}
                | {"allowed_seconds": auth.allowed_seconds, "hold_cents": auth.hold_cents}
                | {"free_seconds": auth.free_seconds, "resident_id": resident_id or None},
                f"call.authorized:{call_id}",
            )
            return auth
        return Authorization(0, 0)

    async def connected(
        self, call_id: str, family_id: str, allowed_seconds: int, ends_at: float
    ) -> None:
        data = {"call_id": call_id, "family_id": family_id, "allowed_seconds": allowed_seconds}
        await self._emit("call.connected", data | {"ends_at": ends_at}, f"call.connected:{call_id}")

    async def warning(self, call_id: str, family_id: str, remaining_s: int = 60) -> None:
        data = {"call_id": call_id, "family_id": family_id, "remaining_s": remaining_s}
        await self._emit("call.warning", data, f"call.warning:{call_id}")

    async def settle(self, charge: CallCharge) -> Settlement:
        """Charge the call (rule 6, the paid part) against its hold and release the rest, and
        consume the agency's part of the allowance: together, exactly once."""
        call_id, family_id, facility_id = charge.call_id, charge.family_id, charge.facility_id
        end_reason, rate, started_at = charge.end_reason, charge.rate, charge.started_at
        seconds = max(0, int(charge.connected_seconds))
        hold_entry = await self.ledger.find(family_id, f"hold:{call_id}")
        held, fixed_rate = 0, rate
        if hold_entry is not None and not hold_entry.void:
            held = hold_entry.amount_cents  # the rate was fixed at connect, with the allowance
            fixed_rate = int(hold_entry.meta.get("rate_cents_per_minute") or rate)
        fp = await self._plan(facility_id)
        day = local_day(fp.timezone, charge.ended_at or self.allowances.clock())
        entry, agency = await self._settle_once(
            call_id, family_id, facility_id, day, seconds, end_reason, fixed_rate, held
        )
        first = entry.meta  # on a retry: what the first settlement decided
        result = Settlement(int(first.get("charged_cents", 0)), entry.available_cents, agency)
        record = {
            "call_id": call_id,
            "facility_id": facility_id,
            "started_at": started_at or None,
            # PROTOCOL.md's names for the family's call details
            "start": started_at or None,
            "facility": {"id": facility_id, "name": charge.facility_name or facility_id},
            # Who the call was with, so a statement reads "Call with James Doe".
            "resident": {"id": charge.resident_id or None, "name": charge.resident_name or None},
            "connected_at": charge.connected_at or None,
            "duration_s": int(first.get("connected_seconds", seconds)),
            "end_reason": str(first.get("end_reason", end_reason)),
            "charged_cents": result.charged_cents,
            "agency_seconds": result.agency_seconds,
            "settled_at": entry.at,
        }
        await self.history.record(family_id, call_id, record)
        await self._emit(
            "call.settled",
            {"family_id": family_id, "rate_cents_per_minute": fixed_rate, "hold_cents": held}
            | record
            | {"balance_cents": result.balance_cents},
            f"call.settled:{call_id}",
            durable=True,  # a settlement is done once its event is kept: else retried
        )
        if result.charged_cents > 0:  # AutoPay reacts to a balance that drops
            try:
                await self.autopay.after_spend(family_id, result.balance_cents, f"settle:{call_id}")
            except Exception:  # the call is settled; AutoPay must never undo that
                log.exception("low-balance handling after %s failed", call_id)
        return result

    async def _settle_once(
        self,
        call_id: str,
        family_id: str,
        facility_id: str,
        day: str,
        seconds: int,
        end_reason: str,
        rate: int,
        held: int,
    ) -> tuple[LedgerEntry, int]:
        """The agency's part and the family's charge in one MULTI, under WATCH of the call's
        reservation (a connect racing the end changes it: then this runs again). A retry gets
        both first results back (the scripts are idempotent per call)."""
        ref = f"settle:{call_id}"
        for attempt in range(10):
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(ALLOWANCE_CALL(call_id))
                    reservation = await self.allowances.reservation(call_id, client=pipe)
                    free = reservation.granted if reservation is not None else 0
                    split = tariff.split(seconds, end_reason, free, rate, held)
                    meta = {
                        "call_id": call_id,
                        "charged_cents": split.charged_cents,
                        "agency_seconds": split.agency_seconds,
                        "connected_seconds": seconds,
                        "end_reason": end_reason,
                    }
                    pipe.multi()  # type: ignore[no-untyped-call]
                    period = reservation.period if reservation is not None else ""
                    await self.allowances.queue_settle(
                        pipe, call_id, period, facility_id, day, split.agency_seconds
                    )
                    await self.ledger.queue_charge(
                        pipe, family_id, split.charged_cents, ref, hold_id=call_id, meta=meta,
                        void_missing_hold=True,
                    )  # fmt: skip
                    raw = await pipe.execute(raise_on_error=False)
            except WatchError:
                continue  # the reservation changed under us (a racing connect): decide again
            if any(isinstance(r, NoScriptError) for r in raw) and not attempt:
                continue  # replayed on a new master without the scripts: they load again
            if required(self._redis).replicas:  # like every money write: a replica has it
                done = await run_durably(self._redis, _nothing)
                done.check(f"the settlement of call {call_id}")
            _, consumed = Allowances.settled(raw[0])
            entry = Ledger.result(family_id, "charge", split.charged_cents, raw[1])
            return entry, int(entry.meta.get("agency_seconds", consumed))
        raise NotDurable(f"the settlement of call {call_id} kept changing: retry it")

    async def calls(self, family_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Settled calls of a family, newest first."""
        return await self.history.latest(family_id, limit)

    # -- AutoPay (billing_hooks.money.autopay) --------------------------------------------

    async def autopay_settings(self, family_id: str) -> AutoPaySettings:
        return await self.autopay.settings(family_id)

    async def set_autopay(self, family_id: str, settings: AutoPaySettings) -> None:
        await self.autopay.set(family_id, settings)

    # -- deposits and closing ----------------------------------------------------------------

    async def deposit(self, family_id: str, amount_cents: int, idempotency_key: str) -> LedgerEntry:
        """Take ``amount_cents`` through the processor and deposit it, once per key."""
        need_payments(self.payments_available)
        if (
            not isinstance(amount_cents, int)
            or isinstance(amount_cents, bool)
            or not DEPOSIT_MIN_CENTS <= amount_cents <= DEPOSIT_MAX_CENTS
        ):
            raise BillingError(
                "invalid_amount",
                f"a deposit must be from $2.00 to $100.00 (200..10000 cents), got {amount_cents!r}",
            )
        key = f"deposit:{family_id}:{idempotency_key}"  # processor key and event id (no Redis key)
        entry = await self.funding.fund(
            "deposit",
            family_id,
            amount_cents,
            key,
            f"deposit:{idempotency_key}",
            then=self._deposit_event(key, family_id, amount_cents),
        )
        _same_deposit(entry, amount_cents)
        return entry

    def _deposit_event(
        self, key: str, family_id: str, amount: int
    ) -> Callable[[LedgerEntry], Awaitable[None]]:
        """The ``deposit`` event, kept for sure before the deposit is acknowledged."""

        async def emit(entry: LedgerEntry) -> None:
            if entry.amount_cents != amount or entry.kind != "deposit":
                return  # another deposit's key: refused by _same_deposit
            data = {"family_id": family_id, "amount_cents": amount}
            data |= {"balance_cents": entry.available_cents, "payment": entry.meta.get("payment")}
            await self._emit("deposit", data, key, durable=True)

        return emit

    async def close(self, family_id: str) -> LedgerEntry:
        """Refund the unused balance to the family and close the account (idempotent)."""
        entry = await self.funding.close(family_id)
        await self.autopay.disable(family_id)
        return entry

    # -- lifecycle ---------------------------------------------------------------------------

    async def resume_pending(self) -> int:
        """Finish fundings and close-out refunds a crash or an outage interrupted (call at
        startup and from time to time). Safe to run on every node at once."""
        # Without a processor, interrupted fundings wait for one (never credited unpaid).
        intents = await self.funding.pending_fundings() if self.payments_available else []
        for key, intent in intents:
            family_id, amount = intent["family_id"], int(intent["amount_cents"])
            if intent["kind"] == "autopay":
                await self.autopay.fund(family_id, amount, key)
                continue
            try:
                then = self._deposit_event(key, family_id, amount)
                entry = await self.funding.fund(
                    "deposit", family_id, amount, key, intent["ref"], then=then
                )
                _same_deposit(entry, amount)
            except BillingError as exc:
                log.warning("deposit %s not completed: %s", key, exc.message)
            except Exception:
                log.exception("deposit %s still pending", key)
        return len(intents) + await self.funding.resume_payouts()

    async def drain(self) -> None:
        """Wait for background AutoPay work started by this biller."""
        await self.autopay.drain()
