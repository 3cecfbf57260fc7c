"""Scheduled visits on one signaling node: the store, the service, the timers' handlers, the
routes, and the tablet's ``visits.list``. The node passes in what belongs to the signaling tier
(its durable timers, its emitter and rooms, the push queue)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from core.directory import Directory
from core.tokens import Tokens
from visits.calls import VisitCalls
from visits.events import Emit, PushQueue, Room, VisitEvents
from visits.http_api import add_visit_routes
from visits.lifecycle import Timers, VisitLifecycle
from visits.mail import VisitMail
from visits.service import VisitService
from visits.store import VisitStore


class Visits:
    def __init__(
        self,
        redis: Redis,
        *,
        directory: Directory,
        timers: Timers,
        emit: Emit,
        tablet_room: Room,
        family_room: Room,
        push: PushQueue | None = None,
        mail: VisitMail | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = VisitStore(redis)
        self.events = VisitEvents(
            emit, tablet_room=tablet_room, family_room=family_room, push=push, mail=mail
        )
        self.lifecycle = VisitLifecycle(self.store, timers, self.events, clock)
        self.service = VisitService(directory, self.store, self.events, self.lifecycle, clock)
        self.directory = directory

    def add_routes(self, app: web.Application, tokens: Tokens) -> None:
        add_visit_routes(app, service=self.service, directory=self.directory, tokens=tokens)

    async def tablet_list(self, resident_id: str) -> dict[str, Any]:
        """``visits.list`` (tablet): ``{"visits": [...]}``, its resident's, soonest first."""
        found = await self.service.visits_of_resident(resident_id)
        return {"visits": [visit.as_json() for visit in found]}


def call_gate(redis: Redis, clock: Callable[[], float] = time.time) -> VisitCalls:
    """The visits collaborator of the call service (its own store on the node's Redis)."""
    return VisitCalls(VisitStore(redis), clock)
