"""Booking, cancelling and deciding visits: the rules (:mod:`visits.rules`) applied to the
directory's records, the atomic store, and both sides told (:class:`VisitEvents`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core.directory import Directory
from core.domain import Facility, Resident
from visits.events import VisitEvents
from visits.lifecycle import VisitLifecycle
from visits.record import OPEN, Visit, VisitStatus
from visits.rules import (
    DAY_S,
    HOUR_S,
    Refusal,
    bookable_window,
    check_cancel,
    check_slot,
    initial_status,
    staff_change_allowed,
)
from visits.slots import MAX_RANGE_DAYS, Slot, slots_between, week_bounds
from visits.store import VisitStore


class NotFound(Exception):
    pass


class InvalidChange(Exception):
    pass


@dataclass(frozen=True)
class SlotView:
    slot: Slot
    available: bool
    taken: int

    def as_json(self) -> dict[str, int | str | bool]:
        return {**self.slot.as_json(), "available": self.available, "taken": self.taken}


class VisitService:
    def __init__(
        self,
        directory: Directory,
        store: VisitStore,
        events: VisitEvents,
        lifecycle: VisitLifecycle,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.store = store
        self.events = events
        self.lifecycle = lifecycle
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    async def _approved(self, family_id: str, resident_id: str) -> tuple[Resident, Facility]:
        """The resident and facility if the family is an approved contact (else
        ``not_approved``, whether or not the resident exists)."""
        contact = await self.directory.contact(resident_id, family_id)
        resident = await self.directory.resident(resident_id)
        facility = await self.directory.facility(resident.facility_id) if resident else None
        if contact is None or contact.status != "approved" or resident is None or facility is None:
            raise Refusal("not_approved")
        return resident, facility

    # -- family -------------------------------------------------------------------------------

    async def slots(
        self, family_id: str, resident_id: str, start: float | None, end: float | None
    ) -> list[SlotView]:
        """The facility's slots in ``[start, end)`` (default: what may be booked now), each
        ``available`` if a booking now could take it (stations, notice and horizon; the
        resident's week and either side's other visits are checked when booking)."""
        _, facility = await self._approved(family_id, resident_id)
        now = self.now()
        earliest, latest = bookable_window(facility.visits, now)
        start = earliest if start is None else start
        end = latest + 1 if end is None else end
        if end <= start or end - start > MAX_RANGE_DAYS * DAY_S:
            raise InvalidChange(f"from..to must be a range of at most {MAX_RANGE_DAYS} days")
        found = slots_between(facility, start, end)
        taken = await self.store.taken(facility.id, [slot.start for slot in found])
        open_ = facility.visits.mode != "on_demand"
        return [
            SlotView(
                slot,
                open_ and earliest <= slot.start <= latest and used < facility.visits.concurrent,
                used,
            )
            for slot, used in zip(found, taken, strict=True)
        ]

    async def book(self, family_id: str, resident_id: str, start: float) -> Visit:
        resident, facility = await self._approved(family_id, resident_id)
        now = self.now()
        slot = check_slot(facility, start, now)
        family = await self.directory.family(family_id)
        settings = facility.visits
        visit = Visit(
            visit_id=uuid.uuid4().hex,
            facility_id=facility.id,
            resident_id=resident.id,
            family_id=family_id,
            start=slot.start,
            end=slot.end,
            status=initial_status(settings),
            timezone=facility.timezone,
            facility_name=facility.name,
            resident_name=resident.name,
            family_name=family.name if family else family_id,
            created_at=now,
            updated_at=now,
            cancel_cutoff_s=settings.cancel_cutoff_hours * HOUR_S,
        )
        await self.store.book(
            visit,
            week=week_bounds(facility, slot.start),
            concurrent=settings.concurrent,
            max_per_week=settings.max_per_week,
        )
        await self.lifecycle.arm(visit)
        await self.events.updated(visit)
        return visit

    async def visits_of_family(self, family_id: str, start: float, end: float) -> list[Visit]:
        return await self.store.of_family(family_id, start, end)

    async def cancel_by_family(self, family_id: str, visit_id: str) -> Visit:
        visit = await self.store.get(visit_id)
        if visit is None or visit.family_id != family_id:
            raise NotFound(f"no visit {visit_id!r} of yours")
        check_cancel(visit, self.now())
        return await self._change(visit, VisitStatus.CANCELED, "", "family")

    # -- tablet -------------------------------------------------------------------------------

    async def visits_of_resident(self, resident_id: str) -> list[Visit]:
        """The resident's visits from a day ago to the booking horizon's end, soonest first."""
        now = self.now()
        return await self.store.of_resident(resident_id, now - DAY_S, now + 400 * DAY_S)

    # -- staff --------------------------------------------------------------------------------

    async def visits_of_facility(
        self, facility_id: str, start: float, end: float, status: VisitStatus | None
    ) -> list[Visit]:
        found = await self.store.of_facility(facility_id, start, end)
        return [v for v in found if status is None or v.status == status]

    async def get(self, visit_id: str) -> Visit | None:
        return await self.store.get(visit_id)

    async def decide(self, visit: Visit, to: VisitStatus, reason: str) -> Visit:
        """Staff approve (``booked``), deny or cancel (with a reason both sides see)."""
        if not staff_change_allowed(visit, to):
            raise InvalidChange(f"a {visit.status.value} visit cannot become {to.value}")
        return await self._change(visit, to, reason, "staff")

    async def _change(self, visit: Visit, to: VisitStatus, reason: str, by: str) -> Visit:
        fields: dict[str, str | float] = {"updated_at": self.now(), "reason": reason}
        if to in (VisitStatus.CANCELED, VisitStatus.DENIED):
            fields["canceled_by"] = by
        result = await self.store.transition(visit, to, OPEN & {visit.status}, **fields)
        if not result.applied:
            raise InvalidChange(f"the visit is {result.previous or 'gone'} now")
        changed = await self.store.get(visit.visit_id)
        assert changed is not None
        if to == VisitStatus.BOOKED:
            await self.lifecycle.arm(changed)
        else:
            await self.lifecycle.disarm(changed)
        await self.events.updated(changed)
        return changed
