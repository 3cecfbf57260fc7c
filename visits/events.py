"""Telling both sides about a visit: Socket.IO events to the tablet and the family, and the
family's Web Push reminders (through the push outbox, never waited on by the caller's path).

- ``visit.updated`` (tablet, family): the visit, on any change (with ``reason`` when staff
  deny or cancel it);
- ``visit.due`` (tablet, family): the visit, at ``start - 5 min``;
- ``visit.reminder`` (tablet, family; an addition to the protocol's socket events), the
  ``visit.reminder`` push (PROTOCOL v1.2 payload table) and an e-mail (:mod:`visits.mail`, to a
  family that signs in with an address), 24 h and 15 min before.

The rooms and the push queue are the signaling tier's; they come in through the constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from visits.mail import VisitMail
from visits.record import Visit

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any], str], Awaitable[None]]
Room = Callable[[str], str]


class PushQueue(Protocol):
    """What :class:`push.notifier.FamilyPush` offers: one message per subscription, in the
    outbox, with a stable id per (event, subscription)."""

    async def enqueue(
        self,
        family_id: str,
        type: str,
        key: str,
        fields: dict[str, Any],
        at: float,
        expires_at: float | None = None,
    ) -> int: ...


class VisitEvents:
    def __init__(
        self,
        emit: Emit,
        *,
        tablet_room: Room,
        family_room: Room,
        push: PushQueue | None = None,
        mail: VisitMail | None = None,
    ) -> None:
        self._emit = emit
        self._mail = mail
        self._tablet_room = tablet_room
        self._family_room = family_room
        self._push = push

    async def _both(self, event: str, payload: dict[str, Any], visit: Visit) -> None:
        for room in (self._tablet_room(visit.resident_id), self._family_room(visit.family_id)):
            try:
                await self._emit(event, payload, room)
            except Exception:
                log.exception("visit %s: %s to %s failed", visit.visit_id, event, room)

    async def updated(self, visit: Visit) -> None:
        await self._both("visit.updated", visit.as_json(), visit)

    async def due(self, visit: Visit) -> None:
        await self._both("visit.due", visit.as_json(), visit)

    async def reminder(self, visit: Visit, before_s: int, now: float) -> None:
        """The reminder ``before_s`` ahead: on both sockets, pushed and mailed to the family."""
        body = visit.as_json()
        await self._both("visit.reminder", {**body, "before_s": before_s}, visit)
        if self._mail is not None:
            try:
                await self._mail.reminder(visit, before_s)
            except Exception:
                log.exception("visit %s: the reminder e-mail was not queued", visit.visit_id)
        if self._push is None:
            return
        fields = {
            "visit_id": visit.visit_id,
            "resident": body["resident"],
            "facility": body["facility"],
            "start": visit.start,
            "start_local": body["start_local"],
        }
        try:
            await self._push.enqueue(
                visit.family_id,
                "visit.reminder",
                f"{visit.visit_id}:{before_s}",
                fields,
                now,
                expires_at=visit.start,  # PROTOCOL v1.2: TTL until the start
            )
        except Exception:
            log.exception("visit %s: the reminder push was not queued", visit.visit_id)
