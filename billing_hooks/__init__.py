"""Billing: the AdvanceConnect ledger, rate caps, metering and billing-event hooks."""

from billing_hooks.account_api import add_account_routes
from billing_hooks.biller import Authorization, AutoPaySettings, Biller, CallCharge, Settlement
from billing_hooks.funding import BillingError
from billing_hooks.hooks import BillingEvent, Hook, HookBus, MemoryHook, WebhookHook
from billing_hooks.ledger import Balance, Ledger, LedgerEntry, LedgerError
from billing_hooks.payments import FakeProcessor, NoProcessor, PaymentProcessor, PaymentResult
from billing_hooks.processors import ProcessorError, load_processor
from billing_hooks.rates import DEFAULT_CAPS, RateCapError, check_rate, load_caps

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
