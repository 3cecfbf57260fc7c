"""Billing: the AdvanceConnect ledger, rate caps, metering and billing-event hooks."""

from billing_hooks.ledger import Balance, Entry, Ledger, LedgerError
from billing_hooks.rates import DEFAULT_CAPS, RateCapError, check_rate, load_caps

__all__ = [
    "DEFAULT_CAPS",
    "Balance",
    "Entry",
    "Ledger",
    "LedgerError",
    "RateCapError",
    "check_rate",
    "load_caps",
]
