"""The family's money screens on the account API: the payment-method step, deposit receipts,
what closing would refund, and statement lines that show their arithmetic.

Additions to PROTOCOL.md's account API (nothing renamed):

- ``GET /api/v1/account/payment-method``: ``{"available", "form", "method"}``: the processor
  adapter's form (:class:`billing_hooks.money.payments.PaymentForm`, null when it collects none) and
  the family's method on file (``{"label": "card ending 4242", ...}`` or null);
- ``POST /api/v1/account/deposits`` takes ``"payment_method": {<the form's fields>}``: the
  adapter makes it the method on file before anything is charged (422
  ``invalid_payment_method`` and nothing changed if it is none); the answer adds ``"receipt"``;
  a declined card is 409 ``payment_failed`` saying so, the balance unchanged;
- ``PUT /api/v1/account/settings`` takes ``"autopay": {..., "payment_method": {...}}`` alike;
- ``GET /api/v1/account/receipts`` (newest first) and ``GET /api/v1/account/receipts/{reference}``;
- ``GET /api/v1/account/close/preview``: ``{"refund_cents", "refund_to", "can_close", "reason"}``
  before ``POST /api/v1/account/close`` (whose answer adds ``"refund_to"``);
- ``GET /api/v1/account/statement`` entries add ``"reference"`` (a deposit's receipt, a call's
  id) and, for a call's charge, ``"billed_minutes"``, ``"rate_cents_per_minute"``,
  ``"connected_seconds"`` and ``"agency_seconds"``: minutes x rate = amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StrictStr

from billing_hooks.metering.biller import Biller
from billing_hooks.money.funding import BillingError
from billing_hooks.money.ledger import Ledger, LedgerEntry
from billing_hooks.money.payments import (
    DECLINE_MESSAGES,
    PAYMENTS_UNAVAILABLE,
    CollectsPaymentMethod,
    PaymentMethod,
    PaymentMethodError,
)
from billing_hooks.money.receipts import PaymentMethods, Receipt, Receipts, reference_of
from core.http_api import ApiError

# What a payment-method form may submit: a few short named strings (a card number, a token).
MethodFields = Annotated[
    dict[
        Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")],
        Annotated[StrictStr, Field(max_length=4096)],
    ],
    Field(max_length=8),
]
INVALID_PAYMENT_METHOD = "invalid_payment_method"


def declined_message(reason: str, method: str | None) -> str:
    what = DECLINE_MESSAGES.get(reason, f"the payment was declined ({reason})")
    card = f" ({method})" if method else ""
    return f"Payment declined: {what}{card}. Nothing was charged; your balance is unchanged."


class Money:
    """What the money screens need beyond the ledger and the biller."""

    def __init__(self, ledger: Ledger, biller: Biller, methods: PaymentMethods) -> None:
        self._ledger = ledger
        self._biller = biller
        self.methods = methods
        self.receipts = Receipts(ledger, methods)

    def _collector(self) -> CollectsPaymentMethod | None:
        processor = self._biller.processor
        if self._biller.payments_available and isinstance(processor, CollectsPaymentMethod):
            return processor
        return None

    async def payment_method(self, family_id: str) -> dict[str, Any]:
        collector = self._collector()
        return {
            "available": self._biller.payments_available,
            "form": collector.payment_form().to_json() if collector is not None else None,
            "method": await self.methods.on_file(family_id),
        }

    async def attach(self, family_id: str, submitted: Mapping[str, str]) -> PaymentMethod:
        """Make ``submitted`` (the form's fields) the family's method on file."""
        if not self._biller.payments_available:
            raise BillingError(
                PAYMENTS_UNAVAILABLE,
                "payments are unavailable: this server has no payment processor configured",
            )
        if (await self._ledger.balance(family_id)).status == "closed":
            raise BillingError("account_closed", "this account is closed")
        collector = self._collector()
        if collector is None:
            raise ApiError(
                422,
                INVALID_PAYMENT_METHOD,
                "this payment processor takes no payment method here: it charges the one on file",
            )
        try:
            method = await collector.attach_method(family_id, submitted)
        except PaymentMethodError as exc:
            raise ApiError(422, exc.code or INVALID_PAYMENT_METHOD, exc.message) from None
        await self.methods.put_on_file(family_id, method)
        return method

    async def deposit(
        self, family_id: str, amount_cents: int, key: str, submitted: Mapping[str, str] | None
    ) -> tuple[LedgerEntry, Receipt]:
        """A deposit paid with ``submitted`` (else the method on file), with its receipt."""
        ledger_ref = f"deposit:{key}"
        done = await self._ledger.find(family_id, ledger_ref)
        method: PaymentMethod | None = None
        if submitted is not None and done is None:  # a retry keeps the first deposit's card
            if (await self._ledger.balance(family_id)).status == "closed":
                raise BillingError("account_closed", "this account is closed")
            method = await self.attach(family_id, submitted)
            await self.methods.used_for(family_id, ledger_ref, method)
        try:
            entry = await self._biller.deposit(family_id, amount_cents, key)
        except BillingError as exc:
            if exc.code != "payment_failed":
                raise
            on_file = await self.methods.on_file(family_id)
            label = method.label if method else (str(on_file["label"]) if on_file else None)
            raise BillingError(exc.code, declined_message(exc.detail, label), exc.detail) from None
        return entry, await self.receipts.of_entry(family_id, entry)

    async def close_preview(self, family_id: str) -> dict[str, Any]:
        account = await self._ledger.balance(family_id)
        on_file = await self.methods.on_file(family_id)
        closed = account.status == "closed"
        reason = None
        if closed:
            reason = "this account is already closed"
        elif account.held_cents:
            reason = "a call is in progress: close the account once it has ended"
        return {
            "family_id": family_id,
            "status": "closed" if closed else "open",
            "balance_cents": 0 if closed else account.balance_cents,
            "held_cents": account.held_cents,
            "refund_cents": 0 if closed else account.balance_cents,
            "refund_to": str(on_file["label"]) if on_file else "your payment method on file",
            "can_close": reason is None,
            "reason": reason,
        }

    async def statement_lines(
        self, family_id: str, entries: list[LedgerEntry], lines: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``lines`` (the JSON of ``entries``) with their reference and, for a call's charge,
        the minutes billed times the rate fixed at connect."""
        holds = {e.hold_id: e for e in entries if e.kind == "hold"}
        out = []
        for entry, line in zip(entries, lines, strict=True):
            line = dict(line)
            if entry.kind in ("deposit", "autopay"):
                line["reference"] = reference_of(entry.seq)
            elif entry.kind in ("charge", "hold", "release") and entry.meta.get("call_id"):
                line["reference"] = str(entry.meta["call_id"])
            else:
                line["reference"] = entry.ref
            if entry.kind == "charge" and entry.hold_id:
                hold = holds.get(entry.hold_id) or await self._ledger.find(
                    family_id, f"hold:{entry.hold_id}"
                )
                line |= _arithmetic(entry, hold)
            out.append(line)
        return out


def _arithmetic(charge: LedgerEntry, hold: LedgerEntry | None) -> dict[str, Any]:
    rate = int(hold.meta.get("rate_cents_per_minute") or 0) if hold is not None else 0
    charged = charge.amount_cents
    out: dict[str, Any] = {
        "rate_cents_per_minute": rate or None,
        "connected_seconds": int(charge.meta.get("connected_seconds") or 0),
        "agency_seconds": int(charge.meta.get("agency_seconds") or 0),
        "billed_minutes": None,
    }
    if rate > 0 and charged % rate == 0:
        out["billed_minutes"] = charged // rate
    elif charged == 0:
        out["billed_minutes"] = 0
    return out
