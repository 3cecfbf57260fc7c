"""Billing: the AdvanceConnect ledger, rate caps, metering and billing-event hooks."""

from billing_hooks.api.account_api import add_account_routes
from billing_hooks.hooks import BillingEvent, Hook, HookBus, MemoryHook, WebhookHook
from billing_hooks.metering.biller import Authorization, Biller, CallCharge, Settlement
from billing_hooks.metering.rates import DEFAULT_CAPS, RateCapError, check_rate, load_caps
from billing_hooks.money.autopay import AutoPaySettings
from billing_hooks.money.funding import BillingError
from billing_hooks.money.ledger import Balance, Ledger, LedgerEntry, LedgerError
from billing_hooks.money.payments import FakeProcessor, NoProcessor, PaymentProcessor, PaymentResult
from billing_hooks.money.processors import ProcessorError, load_processor

__all__ = [
    "DEFAULT_CAPS",
    "Authorization",
    "AutoPaySettings",
    "Balance",
    "Biller",
    "BillingError",
    "BillingEvent",
    "CallCharge",
    "FakeProcessor",
    "Hook",
    "HookBus",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "MemoryHook",
    "NoProcessor",
    "PaymentProcessor",
    "PaymentResult",
    "ProcessorError",
    "RateCapError",
    "Settlement",
    "WebhookHook",
    "add_account_routes",
    "check_rate",
    "load_caps",
    "load_processor",
]
