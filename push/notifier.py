"""Telling a family's devices: one event -> one push message per subscription, in the outbox.

:class:`FamilyPush` is what the call service, billing and the admin routes hold. Its methods
never wait: each spawns the work (read the family's subscriptions and preview setting, append
one :class:`~push.messages.PushMessage` per subscription to the durable outbox) and returns, so
a call's path never waits on Redis for a push, let alone on a push service. One family's events
are appended in the order they were raised (a ring's stop after its start). Message ids are
stable per event and subscription (``call.incoming:<call_id>:<sub>``), so an event raised twice
(a retried timer, a second node) is sent once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from billing_hooks.api.account_api import NotificationPreview
from core.tasks import TaskPool
from push.messages import DELIVERY, RING_STOP_TTL_S, PushMessage, payload
from push.outbox import PushOutbox
from push.subscriptions import SubscriptionStore

log = logging.getLogger(__name__)

Named = dict[str, str]  # {"id", "name"}
RING_TYPES = frozenset({"call.incoming", "call.canceled", "call.missed"})


class FamilyPush:
    def __init__(
        self,
        redis: Redis,
        *,
        subscriptions: SubscriptionStore | None = None,
        outbox: PushOutbox | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.subscriptions = subscriptions or SubscriptionStore(redis, clock=clock)
        self.outbox = outbox or PushOutbox(redis)
        self.preview = NotificationPreview(redis)
        self._clock = clock
        self._pool = TaskPool("push-enqueue")
        self._order: dict[str, asyncio.Lock] = {}
        self._queued: dict[str, int] = {}

    async def reachable(self, family_id: str) -> bool:
        """At least one live subscription (SPEC rule 1: reachable without an open app)."""
        return await self.subscriptions.reachable(family_id)

    # -- the events ---------------------------------------------------------------------------

    def call_incoming(
        self, family_id: str, call_id: str, resident: Named, facility: Named, expires_at: float
    ) -> None:
        fields = {"call_id": call_id, "resident": resident, "facility": facility}
        self._spawn(
            family_id, "call.incoming", call_id, {**fields, "expires_at": expires_at}, expires_at
        )

    def ring_stopped(
        self,
        family_id: str,
        call_id: str,
        resident: Named,
        facility: Named,
        reason: str,
        missed: bool,
    ) -> None:
        """The call stopped ringing (``reason``: answered, declined, canceled, timeout): every
        device stops ringing; ``missed``: and a missed call is left in its place."""
        fields = {"call_id": call_id, "resident": resident, "facility": facility}
        self._spawn(family_id, "call.canceled", call_id, {**fields, "reason": reason})
        if missed:
            self._spawn(family_id, "call.missed", call_id, fields)

    def call_ended(
        self, family_id: str, call_id: str, reason: str, duration_s: float, charged_cents: int
    ) -> None:
        fields = {
            "call_id": call_id,
            "reason": reason,
            "duration_s": duration_s,
            "charged_cents": charged_cents,
        }
        self._spawn(family_id, "call.ended", call_id, fields)

    def low_balance(self, family_id: str, balance_cents: int, event_id: str) -> None:
        self._spawn(family_id, "account.low_balance", event_id, {"balance_cents": balance_cents})

    def contact_updated(
        self, family_id: str, resident: Named, facility: Named, status: str, at: float
    ) -> None:
        fields = {"resident": resident, "facility": facility, "status": status}
        self._spawn(family_id, "contact.updated", f"{resident['id']}:{status}:{at:.3f}", fields)

    def visit_reminder(
        self,
        family_id: str,
        visit_id: str,
        resident: Named,
        facility: Named,
        start: float,
        start_local: str,
        *,
        which: str = "",
    ) -> None:
        """24 h and 15 min before a booked visit (``which`` tells the two apart: one push
        each); it lives until the visit starts."""
        fields = {
            "visit_id": visit_id,
            "resident": resident,
            "facility": facility,
            "start": start,
            "start_local": start_local,
        }
        self._spawn(family_id, "visit.reminder", f"{visit_id}:{which}", fields, start)

    # -- the machinery ------------------------------------------------------------------------

    def _spawn(
        self,
        family_id: str,
        type: str,
        key: str,
        fields: dict[str, Any],
        expires_at: float | None = None,
    ) -> None:
        """Enqueue in the background, after the family's earlier events."""
        at = self._clock()
        lock = self._order.setdefault(family_id, asyncio.Lock())
        self._queued[family_id] = self._queued.get(family_id, 0) + 1

        async def work() -> None:
            try:
                async with lock:
                    await self.enqueue(family_id, type, key, fields, at, expires_at)
            finally:
                self._queued[family_id] -= 1
                if not self._queued[family_id]:
                    del self._queued[family_id]
                    del self._order[family_id]

        try:
            self._pool.spawn(f"{type}:{key}", work)
        except RuntimeError:
            log.warning("stopping: a %s push was not queued", type)
            self._queued[family_id] -= 1
            if not self._queued[family_id]:
                del self._queued[family_id]
                del self._order[family_id]

    async def enqueue(
        self,
        family_id: str,
        type: str,
        key: str,
        fields: dict[str, Any],
        at: float,
        expires_at: float | None = None,
    ) -> int:
        """Append one message per live subscription of the family; how many were new."""
        subs = await self.subscriptions.of(family_id)
        if not subs:
            return 0
        preview = await self.preview.get(family_id)
        delivery = DELIVERY[type]
        if expires_at is None:
            expires_at = at + (delivery.ttl_s or RING_STOP_TTL_S)
        body = payload(type, fields, at, preview)
        topic = key if type in RING_TYPES else None  # a ring's stop replaces its start
        added = 0
        for sub in subs:
            message = PushMessage(
                id=f"{type}:{key}:{sub.id}",
                family_id=family_id,
                subscription_id=sub.id,
                type=type,
                body=body,
                urgency=delivery.urgency,
                created_at=at,
                expires_at=expires_at,
                topic=topic,
                extra={"origin": _origin(sub.endpoint)},
            )
            added += await self.outbox.append(message)
        return added

    async def join(self) -> None:
        """Wait until everything raised so far is in the outbox (tests, shutdown)."""
        await self._pool.join()

    async def stop(self) -> None:
        await self._pool.stop()


def _origin(endpoint: str) -> str:
    scheme, _, rest = endpoint.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
