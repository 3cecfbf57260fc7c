"""A family's upcoming visits as an iCalendar feed (RFC 5545, made by the ``icalendar``
library): one VEVENT per visit, in the facility's time zone (its VTIMEZONE included), with a
stable UID per visit so a calendar app updates an event rather than adding one; a canceled or
denied visit stays in the feed as ``STATUS:CANCELLED`` so the app removes it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from visits.record import Visit, VisitStatus

PRODID = "-//visitation//scheduled visits//EN"
ICS_STATUS = {
    VisitStatus.BOOKED: "CONFIRMED",
    VisitStatus.PENDING: "TENTATIVE",
    VisitStatus.CANCELED: "CANCELLED",
    VisitStatus.DENIED: "CANCELLED",
}


def visits_calendar(visits: Iterable[Visit], name: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    for visit in visits:
        status = ICS_STATUS.get(visit.status)
        if status is None:
            continue  # completed or missed: history, not the calendar's business
        tz = ZoneInfo(visit.timezone)
        event = Event()
        event.add("uid", f"{visit.visit_id}@visitation")
        event.add("dtstamp", datetime.fromtimestamp(visit.updated_at or visit.created_at, tz))
        event.add("dtstart", datetime.fromtimestamp(visit.start, tz))
        event.add("dtend", datetime.fromtimestamp(visit.end, tz))
        event.add("summary", f"Video visit with {visit.resident_name or visit.resident_id}")
        event.add("location", visit.facility_name or visit.facility_id)
        event.add("status", status)
        lines = [
            f"Cancel until {datetime.fromtimestamp(visit.cancel_until, tz):%a %b %d %H:%M %Z}."
        ]
        if visit.status == VisitStatus.PENDING:
            lines.insert(0, "Waiting for the facility's approval.")
        if visit.reason:
            lines.append(f"Reason: {visit.reason}")
        event.add("description", " ".join(lines))
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())
