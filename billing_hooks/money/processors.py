"""Which payment processor takes families' money: ``VISITATION_PAYMENT_PROCESSOR``.

- ``fake``: the in-memory :class:`~billing_hooks.money.payments.FakeProcessor` (approves every card
  but the published test cards that decline, e.g. 4000 0000 0000 0002); what ``serve --demo``
  uses when nothing else is named;
- ``module:factory``: a real adapter, ``factory()`` returning a :class:`PaymentProcessor`;
- unset (and not ``--demo``): none. Deposits and AutoPay are then refused with 503
  ``payments_unavailable`` and never credited: a server never hands out money it did not take.
"""

from __future__ import annotations

import importlib
import logging

from billing_hooks.money.payments import CollectsPaymentMethod, FakeProcessor, PaymentProcessor

log = logging.getLogger(__name__)

FAKE = "fake"


class ProcessorError(ValueError):
    """The configured processor cannot be loaded; the message says why."""


def load_processor(spec: str | None, *, demo: bool = False) -> PaymentProcessor | None:
    """The processor ``spec`` names; None when payments are unavailable."""
    if spec is None or not spec.strip():
        if demo:
            log.warning("demo: deposits go through the in-memory fake processor (no money moves)")
            return FakeProcessor()
        log.warning(
            "no payment processor configured (VISITATION_PAYMENT_PROCESSOR): "
            "deposits and AutoPay are refused with payments_unavailable"
        )
        return None
    spec = spec.strip()
    if spec == FAKE:
        log.warning(
            "VISITATION_PAYMENT_PROCESSOR=fake: test cards only (4242 4242 4242 4242 approved, "
            "4000 0000 0000 0002 declined), no money moves"
        )
        return FakeProcessor()
    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise ProcessorError(
            f"VISITATION_PAYMENT_PROCESSOR: {spec!r} is neither 'fake' nor 'module:factory'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise ProcessorError(f"VISITATION_PAYMENT_PROCESSOR: cannot load {spec!r}: {exc}") from None
    processor = factory()
    if not callable(getattr(processor, "charge", None)) or not callable(
        getattr(processor, "refund", None)
    ):
        raise ProcessorError(
            f"VISITATION_PAYMENT_PROCESSOR: {spec!r} did not return a processor "
            "(an object with async charge() and refund())"
        )
    if not isinstance(processor, CollectsPaymentMethod):
        log.info(
            "payment processor %s collects no payment method: it charges its own on file", spec
        )
    log.info("payment processor: %s", spec)
    processor_typed: PaymentProcessor = processor
    return processor_typed
