"""What the call service asks of visits (:class:`signaling.calls.CallService` holds one
:class:`VisitCalls`, passed in its constructor):

- :meth:`VisitCalls.admit` at ``call.place``: a ``visit_id`` must name a due visit of this
  resident and contact; without one, a ``scheduled`` facility refuses (``not_scheduled``);
- :meth:`VisitCalls.placed` once the call rings: the call is linked to its visit;
- :meth:`VisitCalls.cap` at connect: the call's ``allowed_seconds`` also stop at the slot's end;
- :meth:`VisitCalls.connected`: the visit had its call (``completed`` at its end, not
  ``missed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.domain import Facility
from core.errors import ErrorCode, ProtocolError
from visits.record import Visit
from visits.rules import is_due, needs_visit, seconds_left
from visits.store import VisitStore

NOT_SCHEDULED = "not_scheduled"


class NotScheduled(ProtocolError):
    """``call.place`` refused with ``not_scheduled`` (PROTOCOL v1.2). :class:`ErrorCode` has no
    member for it yet, so the ack names it here (counted under ``invalid_state``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_STATE, message)

    def to_ack(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": NOT_SCHEDULED, "message": self.message}}


class VisitCalls:
    def __init__(self, store: VisitStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def admit(
        self, facility: Facility, resident_id: str, family_id: str, visit_id: str | None
    ) -> Visit | None:
        """The due visit this call is for (None: an on-demand call, allowed here)."""
        if visit_id is None:
            if needs_visit(facility.visits):
                raise NotScheduled("this facility takes calls only for a due scheduled visit")
            return None
        visit = await self._store.get(visit_id)
        if visit is None or visit.resident_id != resident_id or visit.family_id != family_id:
            raise NotScheduled(f"no visit {visit_id!r} with this contact")
        if not is_due(visit, self._clock()):
            raise NotScheduled(
                f"visit {visit_id!r} is {visit.status.value}, due from 5 minutes before its start"
                " to its end"
            )
        return visit

    async def placed(self, visit: Visit, call_id: str) -> None:
        await self._store.link_call(call_id, visit.visit_id)
        await self._store.set_fields(visit.visit_id, call_id=call_id)

    async def cap(self, call_id: str, allowed_s: int) -> int:
        """``allowed_s``, or less if the call is a visit's and the slot ends sooner."""
        visit_id = await self._store.visit_of_call(call_id)
        visit = await self._store.get(visit_id) if visit_id else None
        if visit is None:
            return allowed_s
        return min(allowed_s, seconds_left(visit, self._clock()))

    async def connected(self, call_id: str) -> None:
        visit_id = await self._store.visit_of_call(call_id)
        if visit_id:
            await self._store.set_fields(visit_id, connected="1")
