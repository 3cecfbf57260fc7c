"""Billing's Redis keys (the scheme: :mod:`core.keyspace`): the ledger's accounts, the agency's
allowance, the families' call history, AutoPay, fundings and payouts, payment methods and the
billing events' outbox.

Billing owns the spaces ``acct``, ``allow``, ``agency``, ``billing``, ``autopay``, ``notify``
and ``durability``. An :class:`billing_hooks.outbox.Outbox` keeps its stream's companions under
the stream's name (:func:`outbox_keys`), so another package's outbox (``mail:outbox``,
``push:outbox``) lists its own with the same function in its own space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from core.keyspace import Key, Kind

# -- the ledger (billing_hooks/ledger.lua) ---------------------------------------------------
ACCOUNT: Final = Key(
    "acct:{account}",
    Kind.HASH,
    "a prepaid account: balance, held, totals by kind (deposits, credits, charges, refunds), status",
)
ACCOUNT_ENTRIES: Final = Key(
    "acct:{account}:entries", Kind.LIST, "the account's immutable entries (JSON), oldest first"
)
ACCOUNT_REFS: Final = Key(
    "acct:{account}:refs",
    Kind.HASH,
    "each reference applied to the account and the last entry it made (or a void marker)",
)
ACCOUNT_HOLDS: Final = Key(
    "acct:{account}:holds", Kind.HASH, "the account's open holds: hold id -> cents reserved"
)

# -- the agency's allowance (allowance_reserve.lua, allowance_settle.lua) --------------------
ALLOWANCE_CALL: Final = Key(
    "allow:call:{call_id}",
    Kind.HASH,
    "a call's part of its resident's allowance: state, granted, period (a key name), consumed",
    "15 days after its last write",
)
ALLOWANCE_PERIOD: Final = Key(
    "allow:{resident_id}:{period}:{start}",
    Kind.HASH,
    "a resident's allowance period (period day or week, from its local start date): "
    "seconds used and reserved",
    "15 days after its last write",
)
AGENCY_DAY: Final = Key(
    "agency:{facility_id}:{day}",
    Kind.HASH,
    "the agency's seconds and calls of a facility's local day (the admins' board)",
    "40 days after its last write",
)

# -- the biller ------------------------------------------------------------------------------
FAMILY_CALLS: Final = Key(
    "billing:calls:{family_id}", Kind.LIST, "a family's settled calls (JSON), newest first"
)
FAMILY_CALL_IDS: Final = Key(
    "billing:calls:{family_id}:ids", Kind.SET, "the call ids already in the family's history"
)
AUTOPAY: Final = Key("autopay:{family_id}", Kind.HASH, "a family's AutoPay settings")
FAMILY_LOCK: Final = Key(
    "billing:lock:family:{family_id}",
    Kind.STRING,
    "one account operation of a family at a time (a redis-py lock token)",
    "5 s",
)
NOTIFY_PREVIEW: Final = Key(
    "notify:preview:{family_id}", Kind.STRING, "a family's choice of message previews in pushes"
)

# -- fundings, payouts, payment methods -------------------------------------------------------
FUNDING_PENDING: Final = Key(
    "billing:funding:pending",
    Kind.HASH,
    "payment intents not yet done: processor key -> intent (JSON)",
)
FUNDING_ATTEMPTED: Final = Key(
    "billing:funding:attempted", Kind.HASH, "intents whose payment was asked of the processor"
)
PAYOUT_PENDING: Final = Key(
    "billing:payouts:pending", Kind.HASH, "close-out refunds under way: ledger ref -> mark"
)
PAYMENT_METHODS: Final = Key(
    "billing:methods:{family_id}", Kind.LIST, "a family's payment methods on file, oldest first"
)
PAYMENT_METHOD_USED: Final = Key(
    "billing:methods:used:{family_id}",
    Kind.HASH,
    "the method each of a family's deposits used: ledger ref -> label",
)

# -- durability (behind Sentinel) -------------------------------------------------------------
DURABILITY_BARRIER: Final = Key(
    "durability:barrier", Kind.STRING, "a counter each confirmed money write increments"
)


@dataclass(frozen=True)
class OutboxKeys:
    """An outbox stream and the keys it keeps beside it, under the stream's name."""

    stream: Key
    seen: Key
    rejections: Key
    dead: Key
    lease: Key

    def all(self) -> tuple[Key, ...]:
        return (self.stream, self.seen, self.rejections, self.dead, self.lease)


def outbox_keys(stream: str, what: str = "events") -> OutboxKeys:
    """The keys of the outbox whose stream is ``stream`` (a key without slots, such as
    ``"billing:outbox"``); ``what`` names its entries in the docs."""
    base = Key(stream, Kind.STREAM, f"{what} waiting for delivery, oldest first")
    if base.slots:
        raise ValueError(f"an outbox stream is one key, not a family: {stream!r}")
    return OutboxKeys(
        stream=base,
        seen=Key(
            f"{stream}:seen:{{event_id+}}",
            Kind.STRING,
            f"an id of the {what} already appended (a retry appends nothing)",
            "7 days (the outbox's dedupe TTL)",
        ),
        rejections=Key(
            f"{stream}:rejections", Kind.HASH, f"rejections so far of each of the {what}"
        ),
        dead=Key(f"{stream}:dead", Kind.STREAM, f"{what} rejected too often (dead letters)"),
        lease=Key(
            f"{stream}:lease",
            Kind.STRING,
            f"the node delivering the {what} (lease holder)",
            "30 s unless renewed",
        ),
    )


OUTBOX: Final = outbox_keys("billing:outbox", "billing events")

KEYS: Final = (
    ACCOUNT,
    ACCOUNT_ENTRIES,
    ACCOUNT_REFS,
    ACCOUNT_HOLDS,
    ALLOWANCE_CALL,
    ALLOWANCE_PERIOD,
    AGENCY_DAY,
    FAMILY_CALLS,
    FAMILY_CALL_IDS,
    AUTOPAY,
    FAMILY_LOCK,
    NOTIFY_PREVIEW,
    FUNDING_PENDING,
    FUNDING_ATTEMPTED,
    PAYOUT_PENDING,
    PAYMENT_METHODS,
    PAYMENT_METHOD_USED,
    DURABILITY_BARRIER,
    *OUTBOX.all(),
)
