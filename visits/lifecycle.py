"""A visit's life on the durable timers: reminders 24 h and 15 min before, ``visit.due`` at
``start - 5 min``, and at its ``end`` the outcome (``completed`` if a call for it connected,
else ``missed``; a pending visit never approved is ``canceled``).

The timers are the signaling tier's :class:`~signaling.timers.DurableTimers` (passed in): they
live in Redis, any node fires them, and a node that dies leaves them to another, so every
handler here is idempotent (a reminder and ``visit.due`` are claimed once per visit, the
outcome is a compare-and-set transition).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from visits.events import VisitEvents
from visits.record import OPEN, Visit, VisitStatus
from visits.rules import DUE_BEFORE_S, REMINDERS_BEFORE_S, outcome, reminder_times
from visits.store import VisitStore

DUE = "visit_due"
END = "visit_end"
NOT_APPROVED_IN_TIME = "not approved before the visit"


def remind_kind(before_s: int) -> str:
    return f"visit_remind_{before_s}"


class Timers(Protocol):
    """What :class:`signaling.timers.DurableTimers` offers."""

    def on(self, kind: str, handler: Callable[[str], Awaitable[None]]) -> None: ...

    async def schedule(self, kind: str, call_id: str, due: float) -> None: ...

    async def cancel(self, kind: str, call_id: str) -> None: ...


class VisitLifecycle:
    def __init__(
        self,
        store: VisitStore,
        timers: Timers,
        events: VisitEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._timers = timers
        self._events = events
        self._clock = clock
        for before in REMINDERS_BEFORE_S:
            timers.on(remind_kind(before), self._reminder_handler(before))
        timers.on(DUE, self._on_due)
        timers.on(END, self._on_end)

    async def arm(self, visit: Visit) -> None:
        """Schedule what is still ahead: the end always; reminders and due once booked."""
        await self._timers.schedule(END, visit.visit_id, visit.end)
        if visit.status != VisitStatus.BOOKED:
            return
        for before, when in reminder_times(visit, self._clock()):
            await self._timers.schedule(remind_kind(before), visit.visit_id, when)
        await self._timers.schedule(DUE, visit.visit_id, visit.start - DUE_BEFORE_S)

    async def disarm(self, visit: Visit) -> None:
        for before in REMINDERS_BEFORE_S:
            await self._timers.cancel(remind_kind(before), visit.visit_id)
        await self._timers.cancel(DUE, visit.visit_id)
        await self._timers.cancel(END, visit.visit_id)

    def _reminder_handler(self, before_s: int) -> Callable[[str], Awaitable[None]]:
        async def handle(visit_id: str) -> None:
            visit = await self._store.get(visit_id)
            now = self._clock()
            if visit is None or visit.status != VisitStatus.BOOKED or now >= visit.start:
                return
            if await self._store.claim_once(visit_id, f"remind_{before_s}"):
                await self._events.reminder(visit, before_s, now)

        return handle

    async def _on_due(self, visit_id: str) -> None:
        visit = await self._store.get(visit_id)
        if visit is None or visit.status != VisitStatus.BOOKED or self._clock() >= visit.end:
            return
        if await self._store.claim_once(visit_id, "due"):
            await self._events.due(visit)

    async def _on_end(self, visit_id: str) -> None:
        visit = await self._store.get(visit_id)
        if visit is None:
            return
        to = outcome(visit)
        if to is None:
            return
        extra: dict[str, str | float] = {"updated_at": self._clock()}
        if to == VisitStatus.CANCELED:
            extra |= {"reason": NOT_APPROVED_IN_TIME, "canceled_by": "system"}
        result = await self._store.transition(
            visit, to, allowed_from=OPEN & {visit.status}, **extra
        )
        if result.applied:
            changed = await self._store.get(visit_id)
            if changed is not None:
                await self._events.updated(changed)
        elif result.previous in {s.value for s in OPEN}:
            # Changed between our read and the transition (e.g. just approved): decide again.
            await self._on_end(visit_id)
