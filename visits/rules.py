"""The booking rules of scheduled visits, in one place (pure: every function takes ``now``).

What needs other visits (``slot_full``, ``weekly_limit``, ``conflict``) is decided by
:func:`check_holds` over counts; :class:`visits.store.VisitStore` applies the same checks
atomically in Redis (``book.lua``), so two nodes never overbook a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.domain import Facility, VisitSettings
from visits.record import OPEN, Visit, VisitStatus
from visits.slots import Slot, slot_at

HOUR_S = 3600
DAY_S = 86400
DUE_BEFORE_S = 300  # the tablet may place a visit from start - 5 min to its end
REMINDERS_BEFORE_S = (DAY_S, 15 * 60)  # 24 h and 15 min before

RefusalCode = Literal[
    "slot_full",
    "too_soon",
    "too_far",
    "weekly_limit",
    "conflict",
    "not_approved",
    "outside_hours",
    "not_scheduled",
    "too_late_to_cancel",
]

#: HTTP status of each refusal (PROTOCOL v1.2).
STATUS: dict[RefusalCode, int] = {
    "slot_full": 409,
    "too_soon": 409,
    "too_far": 409,
    "weekly_limit": 409,
    "conflict": 409,
    "too_late_to_cancel": 409,
    "not_approved": 422,
    "outside_hours": 422,
    "not_scheduled": 422,
}

MESSAGES: dict[RefusalCode, str] = {
    "slot_full": "every station is taken in this slot",
    "too_soon": "this slot is too soon to book (see the facility's minimum notice)",
    "too_far": "this slot is too far ahead to book (see the facility's booking horizon)",
    "weekly_limit": "the resident has used this week's visits",
    "conflict": "the resident or the family already has a visit then",
    "not_approved": "this contact is not approved for visits",
    "outside_hours": "no slot starts then (visits start on the slots within calling hours)",
    "not_scheduled": "this facility does not take scheduled visits",
    "too_late_to_cancel": "the cancellation cutoff of this visit has passed",
}


class Refusal(Exception):
    def __init__(self, code: RefusalCode, message: str | None = None) -> None:
        super().__init__(message or MESSAGES[code])
        self.code: RefusalCode = code
        self.message = message or MESSAGES[code]
        self.status = STATUS[code]


def takes_bookings(settings: VisitSettings) -> bool:
    return settings.mode in ("scheduled", "both")


def needs_visit(settings: VisitSettings) -> bool:
    """Calls from this facility's tablets need a due visit (``mode: scheduled``)."""
    return settings.mode == "scheduled"


def check_slot(facility: Facility, start: float, now: float) -> Slot:
    """The slot a booking for ``start`` takes, or the refusal: ``not_scheduled``,
    ``outside_hours``, ``too_soon``, ``too_far`` (in that order)."""
    settings = facility.visits
    if not takes_bookings(settings):
        raise Refusal("not_scheduled")
    slot = slot_at(facility, start)
    if slot is None:
        raise Refusal("outside_hours")
    if slot.start < now + settings.min_notice_hours * HOUR_S:
        raise Refusal("too_soon")
    if slot.start > now + settings.max_advance_days * DAY_S:
        raise Refusal("too_far")
    return slot


def bookable_window(settings: VisitSettings, now: float) -> tuple[float, float]:
    """The earliest and latest slot start a booking made ``now`` may take."""
    return (
        now + settings.min_notice_hours * HOUR_S,
        now + settings.max_advance_days * DAY_S,
    )


@dataclass(frozen=True)
class Holds:
    """What the other holding visits (pending, booked, completed, missed) take."""

    in_slot: int  # visits at the facility starting in this slot
    resident_week: int  # the resident's visits starting in the slot's local week
    resident_overlap: bool  # the resident has a visit overlapping the slot
    family_overlap: bool  # the family has a visit overlapping the slot


def check_holds(settings: VisitSettings, holds: Holds) -> None:
    """``conflict``, then ``weekly_limit``, then ``slot_full`` (the order ``book.lua`` uses)."""
    if holds.resident_overlap or holds.family_overlap:
        raise Refusal("conflict")
    if holds.resident_week >= settings.max_per_week:
        raise Refusal("weekly_limit")
    if holds.in_slot >= settings.concurrent:
        raise Refusal("slot_full")


def overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    return a_start < b_end and b_start < a_end


def initial_status(settings: VisitSettings) -> VisitStatus:
    return VisitStatus.PENDING if settings.requires_approval else VisitStatus.BOOKED


def check_cancel(visit: Visit, now: float) -> None:
    """The family may cancel an open visit until its cutoff."""
    if visit.status not in OPEN:
        raise Refusal("too_late_to_cancel", f"the visit is already {visit.status.value}")
    if now > visit.cancel_until:
        raise Refusal("too_late_to_cancel")


def is_due(visit: Visit, now: float) -> bool:
    """The tablet may place it now: booked, from ``start - 5 min`` to ``end``."""
    return visit.status == VisitStatus.BOOKED and visit.start - DUE_BEFORE_S <= now < visit.end


def seconds_left(visit: Visit, now: float) -> int:
    """What a call for ``visit`` connected ``now`` may last at most: until the slot's end."""
    return max(0, int(visit.end - now))


def outcome(visit: Visit) -> VisitStatus | None:
    """At its end: a booked visit whose call connected is ``completed``, else ``missed``; a
    pending one was never approved (``canceled``); anything else is final already."""
    if visit.status == VisitStatus.BOOKED:
        return VisitStatus.COMPLETED if visit.connected else VisitStatus.MISSED
    if visit.status == VisitStatus.PENDING:
        return VisitStatus.CANCELED
    return None


def reminder_times(visit: Visit, now: float) -> list[tuple[int, float]]:
    """The reminders still ahead of ``now``: ``(seconds before, when)``."""
    return [
        (before, visit.start - before)
        for before in REMINDERS_BEFORE_S
        if visit.start - before > now
    ]


def staff_change_allowed(visit: Visit, to: VisitStatus) -> bool:
    """Staff approve a pending visit (``booked``), deny a pending one, cancel an open one."""
    if to == VisitStatus.BOOKED:
        return visit.status == VisitStatus.PENDING
    if to == VisitStatus.DENIED:
        return visit.status == VisitStatus.PENDING
    if to == VisitStatus.CANCELED:
        return visit.status in OPEN
    return False
