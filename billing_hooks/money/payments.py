"""The payment hook: how money gets into (and back out of) an AdvanceConnect account.

A real processor adapter implements :class:`PaymentProcessor`; both calls must be idempotent by
``idempotency_key`` (a retry with the same key returns the first result and moves money once).

An adapter may also collect the payment method itself (:class:`CollectsPaymentMethod`): it
describes the form the family page mounts (:class:`PaymentForm`: the fake processor's test-card
field, or a real processor's hosted fields loaded from its own script), and turns what that
form submits into the family's method on file (:meth:`attach_method`), which later charges
(deposits, AutoPay) use. An adapter without it charges the method it already has on file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class PaymentResult:
    ok: bool
    reference: str = ""
    reason: str = ""


class PaymentProcessor(Protocol):
    async def charge(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        """Take ``amount_cents`` from the family's payment method on file."""
        ...

    async def refund(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        """Pay ``amount_cents`` back to the family (unused balance of a closed account)."""
        ...


FormKind = Literal["card_number", "hosted"]


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    placeholder: str = ""
    autocomplete: str = ""
    inputmode: str = ""


@dataclass(frozen=True)
class TestCard:
    number: str
    outcome: str  # what paying with it does, in words


@dataclass(frozen=True)
class PaymentForm:
    """What the family page mounts to ask for a payment method, described by the adapter.

    ``card_number``: plain ``fields`` the page draws (the fake processor's test cards). ``hosted``:
    the page imports ``script_url`` (an ES module of the adapter's) and calls its
    ``mount(container, config)``, whose ``collect()`` resolves to the fields to submit (e.g. a
    processor token); card numbers then never reach this server."""

    processor: str
    kind: FormKind
    title: str = "Payment method"
    fields: tuple[FormField, ...] = ()
    script_url: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    test_cards: tuple[TestCard, ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["fields"] = [asdict(f) for f in self.fields]
        out["test_cards"] = [asdict(c) for c in self.test_cards]
        out["config"] = dict(self.config)
        return out


@dataclass(frozen=True)
class PaymentMethod:
    """A family's payment method on file, as a receipt names it ("card ending 4242")."""

    id: str
    brand: str
    last4: str

    @property
    def label(self) -> str:
        return f"{self.brand} ending {self.last4}" if self.last4 else self.brand

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "brand": self.brand, "last4": self.last4, "label": self.label}


class PaymentMethodError(ValueError):
    """What the form submitted is no payment method; ``message`` says why, for the family."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@runtime_checkable
class CollectsPaymentMethod(Protocol):
    """An adapter that collects the payment method itself (see the module's docstring)."""

    def payment_form(self) -> PaymentForm: ...

    async def attach_method(self, family_id: str, submitted: Mapping[str, str]) -> PaymentMethod:
        """Make what the form submitted the family's method on file; raise
        :class:`PaymentMethodError` if it is none (nothing is then on file anew)."""
        ...


# The fake processor's test cards (the numbers card networks publish for testing).
APPROVED_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
INSUFFICIENT_CARD = "4000000000009995"
_DECLINES = {DECLINED_CARD: "card_declined", INSUFFICIENT_CARD: "insufficient_funds"}
DECLINE_MESSAGES = {
    "card_declined": "the card was declined",
    "insufficient_funds": "the card has insufficient funds",
    "card_expired": "the card has expired",
    "declined": "the payment was declined",
}


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        digit = int(ch) * (2 if i % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def card_number(raw: str) -> str:
    """A card number's digits (spaces and dashes allowed), or :class:`PaymentMethodError`."""
    digits = re.sub(r"[\s-]", "", raw or "")
    if not digits:
        raise PaymentMethodError("invalid_payment_method", "enter the card number")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise PaymentMethodError(
            "invalid_payment_method", "a card number is 12 to 19 digits, like 4242 4242 4242 4242"
        )
    if not _luhn_ok(digits):
        raise PaymentMethodError(
            "invalid_payment_method", "that card number is not valid: check the digits"
        )
    return digits


@dataclass(frozen=True)
class Payment:
    kind: str
    family_id: str
    amount_cents: int
    idempotency_key: str
    result: PaymentResult


class FakeProcessor:
    """An in-memory processor for development and tests, idempotent by key like a real one.

    ``fail_with`` set to a reason makes new payments fail with it (``declined``,
    ``card_expired`` ...); ``raise_error`` makes them raise, like a processor that is down.

    It collects a payment method as a test card number: 4242 4242 4242 4242 is approved,
    4000 0000 0000 0002 declined and 4000 0000 0000 9995 has insufficient funds when charged;
    any other valid number is approved. A family with no card on file is approved (the server's
    own deposits, e.g. a seed's opening balance).
    """

    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.fail_with: str | None = None
        self.raise_error: Exception | None = None
        self.cards: dict[str, str] = {}  # family id -> the card number on file

    def payment_form(self) -> PaymentForm:
        return PaymentForm(
            processor="fake",
            kind="card_number",
            title="Test card",
            fields=(
                FormField(
                    "card_number",
                    "Card number",
                    placeholder="4242 4242 4242 4242",
                    autocomplete="cc-number",
                    inputmode="numeric",
                ),
            ),
            test_cards=(
                TestCard("4242 4242 4242 4242", "approved"),
                TestCard("4000 0000 0000 0002", "declined"),
                TestCard("4000 0000 0000 9995", "insufficient funds"),
            ),
            note="Test mode: no money moves. Use a test card number.",
        )

    async def attach_method(self, family_id: str, submitted: Mapping[str, str]) -> PaymentMethod:
        unknown = sorted(set(submitted) - {"card_number"})
        if unknown:
            raise PaymentMethodError(
                "invalid_payment_method", f"unknown payment method field: {', '.join(unknown)}"
            )
        digits = card_number(str(submitted.get("card_number", "")))
        self.cards[family_id] = digits
        return PaymentMethod(f"fake-card-{digits[-4:]}", "card", digits[-4:])

    async def charge(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        return self._pay("charge", family_id, amount_cents, idempotency_key)

    async def refund(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        return self._pay("refund", family_id, amount_cents, idempotency_key)

    def _pay(self, kind: str, family_id: str, amount: int, key: str) -> PaymentResult:
        prior = self.payments.get(key)
        if prior is not None:
            return prior.result
        if self.raise_error is not None:
            raise self.raise_error
        decline = _DECLINES.get(self.cards.get(family_id, "")) if kind == "charge" else None
        if self.fail_with is not None or decline is not None:
            result = PaymentResult(ok=False, reason=self.fail_with or decline or "declined")
        else:
            result = PaymentResult(ok=True, reference=f"fake-{len(self.payments) + 1}")
        self.payments[key] = Payment(kind, family_id, amount, key, result)
        return result

    def succeeded(self, kind: str = "charge") -> list[Payment]:
        return [p for p in self.payments.values() if p.kind == kind and p.result.ok]


PAYMENTS_UNAVAILABLE = "payments_unavailable"


class NoProcessor:
    """Stands in when no processor is configured: nothing is ever charged or paid out (a
    close-out refund stays pending until a processor is configured)."""

    async def charge(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        return PaymentResult(ok=False, reason=PAYMENTS_UNAVAILABLE)

    async def refund(
        self, family_id: str, amount_cents: int, idempotency_key: str
    ) -> PaymentResult:
        return PaymentResult(ok=False, reason=PAYMENTS_UNAVAILABLE)
