"""Billing events and the pluggable hooks they go to.

A hook must be quick and must not fail the billing operation that emits: :class:`HookBus` calls
every hook and logs a hook's error. Slow or unreliable sinks (an HTTP billing system) go behind
the durable outbox of :class:`WebhookHook`, whose ``publish`` is one Redis write. The one error
that does reach the emitter is :class:`billing_hooks.durability.NotDurable` (the outbox could
not keep the event for sure, e.g. during a Redis failover), after every hook has run: an
operation that acknowledges money (a deposit) must not acknowledge an event it may have lost.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, get_args

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billing_hooks.durability import NotDurable
from billing_hooks.outbox import Outbox, OutboxDelivery
from billing_hooks.redis_keys import OUTBOX

log = logging.getLogger(__name__)

EventType = Literal[
    "call.authorized",
    "call.connected",
    "call.warning",
    "call.settled",
    "deposit",
    "low_balance",
    "autopay",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


@dataclass(frozen=True)
class BillingEvent:
    """One billing event. ``id`` is stable across retries of the operation that emitted it, so
    sinks can (and the outbox does) drop duplicates."""

    type: EventType
    id: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, type: EventType, data: dict[str, Any], id: str | None = None) -> BillingEvent:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown billing event type {type!r}")
        return cls(type=type, id=id or uuid.uuid4().hex, at=round(time.time(), 3), data=data)

    def to_json(self) -> str:
        body = {"id": self.id, "type": self.type, "at": self.at, "data": self.data}
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> BillingEvent:
        body = json.loads(raw)
        if body.get("type") not in EVENT_TYPES:
            raise ValueError(f"unknown billing event type {body.get('type')!r}")
        return cls(
            type=cast(EventType, body["type"]),
            id=str(body["id"]),
            at=float(body["at"]),
            data=dict(body.get("data") or {}),
        )


class Hook(Protocol):
    async def publish(self, event: BillingEvent) -> None: ...


class HookBus:
    """Fans each event out to every hook; one hook's failure is logged and skips only that hook."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.hooks: list[Hook] = list(hooks)

    def add(self, hook: Hook) -> None:
        self.hooks.append(hook)

    async def publish(self, event: BillingEvent) -> None:
        unsure: NotDurable | None = None
        for hook in self.hooks:
            try:
                await hook.publish(event)
            except NotDurable as exc:
                log.warning("billing hook %r: %s %s not kept for sure: %s", hook, event.type,
                            event.id, exc)  # fmt: skip
                unsure = exc
            except Exception:
                log.exception("billing hook %r failed on %s %s", hook, event.type, event.id)
        if unsure is not None:
            raise unsure

    async def emit(
        self, type: EventType, data: dict[str, Any], *, id: str | None = None
    ) -> BillingEvent:
        event = BillingEvent.new(type, data, id)
        await self.publish(event)
        return event


class MemoryHook:
    """Keeps events in memory (development, tests, a local dashboard)."""

    def __init__(self) -> None:
        self.events: list[BillingEvent] = []

    async def publish(self, event: BillingEvent) -> None:
        self.events.append(event)

    def of(self, type: EventType) -> list[BillingEvent]:
        return [e for e in self.events if e.type == type]


class LogHook:
    """Logs every event at INFO."""

    async def publish(self, event: BillingEvent) -> None:
        log.info("billing event %s %s %s", event.type, event.id, event.to_json())


class WebhookHook:
    """POSTs events to ``url`` as signed JSON, from a durable Redis outbox with retries.

    ``publish`` only appends to the outbox (deduplicated by event id); the delivery loop
    (``start``/``stop``) sends them, one leased node at a time. See :mod:`billing_hooks.outbox`.
    """

    def __init__(
        self,
        url: str,
        secret: bytes | str,
        redis: Redis,
        *,
        stream: str = OUTBOX.stream(),
        **delivery: Any,
    ) -> None:
        self.outbox = Outbox(redis, stream)
        self.delivery = OutboxDelivery(self.outbox, url, secret, **delivery)

    async def publish(self, event: BillingEvent) -> None:
        try:
            await self.outbox.append(event.id, event.to_json())
        except (RedisError, OSError) as exc:  # maybe appended, maybe not: say so
            raise NotDurable(f"the billing event {event.id} could not be stored: {exc}") from exc

    def start(self) -> None:
        self.delivery.start()

    async def stop(self) -> None:
        await self.delivery.stop()

    def __repr__(self) -> str:
        return f"WebhookHook({self.delivery.url!r})"
