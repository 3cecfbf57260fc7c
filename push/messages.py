"""What a push says (PROTOCOL v1.2's payload table) and the outbox's unit of work.

:func:`payload` builds the JSON a service worker receives: ``type``, the type's fields and
``at`` (when it was sent); with the family's ``private`` preview only ``type``,
``call_id``/``visit_id`` and the times are kept, so a lock screen names nobody.
:data:`DELIVERY` holds each type's TTL and ``Urgency``. ``call.canceled`` is an addition:
it stops the other devices ringing (same notification tag: the call id), with ``reason``
``answered``, ``declined``, ``canceled`` or ``timeout``.

A :class:`PushMessage` is one payload for one subscription, with its absolute expiry (a
message is retried only until then) and its attempt count.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Urgency = Literal["very-low", "low", "normal", "high"]
Preview = Literal["full", "private"]

DAY_S = 86400
RING_STOP_TTL_S = 120  # a device back online soon after the ring learns it stopped


@dataclass(frozen=True)
class Delivery:
    ttl_s: int | None  # None: given per message (the ring's end, a visit's start)
    urgency: Urgency


DELIVERY: dict[str, Delivery] = {
    "call.incoming": Delivery(None, "high"),
    "call.canceled": Delivery(RING_STOP_TTL_S, "high"),
    "call.missed": Delivery(DAY_S, "normal"),
    "call.ended": Delivery(DAY_S, "low"),
    "account.low_balance": Delivery(DAY_S, "normal"),
    "contact.updated": Delivery(7 * DAY_S, "normal"),
    "visit.reminder": Delivery(None, "normal"),
}

#: What a private preview keeps: the type, the call or visit, and the times.
PRIVATE_FIELDS = frozenset({"type", "call_id", "visit_id", "at", "expires_at", "start"})


def payload(type: str, fields: dict[str, Any], at: float, preview: Preview) -> dict[str, Any]:
    if type not in DELIVERY:
        raise ValueError(f"unknown push type {type!r}")
    body: dict[str, Any] = {"type": type, **fields, "at": round(at, 3)}
    if preview == "private":
        body = {k: v for k, v in body.items() if k in PRIVATE_FIELDS}
        body["private"] = True
    return body


@dataclass(frozen=True)
class PushMessage:
    id: str  # stable for one (event, subscription): the outbox drops a second append
    family_id: str
    subscription_id: str
    type: str
    body: dict[str, Any]
    urgency: Urgency
    created_at: float
    expires_at: float
    topic: str | None = None  # RFC 8030: a newer message replaces a pending one
    attempt: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def ttl_s(self, now: float) -> int:
        return max(0, int(self.expires_at - now))

    def retried(self) -> PushMessage:
        return PushMessage(**{**asdict(self), "attempt": self.attempt + 1})

    @property
    def outbox_id(self) -> str:
        return self.id if not self.attempt else f"{self.id}#{self.attempt}"

    def data(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> PushMessage:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("a push message is a JSON object")
        return cls(**body)
