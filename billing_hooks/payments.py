"""The payment hook: how money gets into (and back out of) an AdvanceConnect account.

A real processor adapter implements :class:`PaymentProcessor`; both calls must be idempotent by
``idempotency_key`` (a retry with the same key returns the first result and moves money once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
    """

    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.fail_with: str | None = None
        self.raise_error: Exception | None = None

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
        if self.fail_with is not None:
            result = PaymentResult(ok=False, reason=self.fail_with)
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
