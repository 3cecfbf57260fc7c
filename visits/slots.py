"""Visit slots from a facility's calling hours, in its time zone (pure: no clock, no Redis).

Slots start on the hour and every ``slot_minutes`` after it, within calling hours: a slot is a
wall-clock start ``s`` on that grid with ``[s, s + slot_minutes)`` inside one calling window
(an overnight window runs into the next day, as for on-demand calls). Each wall-clock start is
then placed in time with the facility's zone:

- a start that does not exist (the hour skipped when clocks go forward) is no slot;
- a start that exists twice (the hour repeated when clocks go back) gives two slots, with
  distinct UTC starts;
- a slot lasts ``slot_minutes`` of real time, so on a 23 h or 25 h day every slot is as long as
  any other; a slot that would overlap the one before it (only possible with slots longer than
  an hour, in the repeated hour) is dropped.

Times are Unix seconds (ints); ``*_local`` strings are ISO 8601 with the facility's UTC offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.domain import CallingWindow, Facility

MAX_RANGE_DAYS = 62  # one request never asks for more


@dataclass(frozen=True)
class Slot:
    start: int
    end: int
    start_local: str
    end_local: str

    def as_json(self) -> dict[str, int | str]:
        return {
            "start": self.start,
            "start_local": self.start_local,
            "end": self.end,
            "end_local": self.end_local,
        }


def local_iso(at: float, tz: ZoneInfo) -> str:
    """``2026-12-08T14:30:00-08:00``."""
    return datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def _instants(wall: datetime, tz: ZoneInfo) -> list[int]:
    """The UTC instants a naive wall-clock time names in ``tz``: none (skipped), one, or two
    (repeated)."""
    found: list[int] = []
    for fold in (0, 1):
        aware = wall.replace(tzinfo=tz, fold=fold)
        at = aware.astimezone(UTC)
        if at.astimezone(tz).replace(tzinfo=None) != wall:
            continue  # in the gap: this wall time does not exist
        stamp = int(at.timestamp())
        if stamp not in found:
            found.append(stamp)
    return found


def _window_spans(window: CallingWindow, day: date) -> tuple[datetime, datetime] | None:
    """The wall-clock span ``window`` opens on ``day`` (None if not on that weekday)."""
    minutes = window.minutes_on(day.weekday())
    if minutes is None:
        return None
    start, end = minutes  # an overnight window ends past 1440: into the next day
    midnight = datetime.combine(day, time(0))
    return midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)


def _wall_starts(span: tuple[datetime, datetime], slot_minutes: int) -> list[datetime]:
    """Grid starts within ``span``: on the hour, then every ``slot_minutes``."""
    first, last = span
    step = timedelta(minutes=slot_minutes)
    anchor = first.replace(minute=0, second=0, microsecond=0)
    if anchor < first:
        anchor += timedelta(hours=1)  # the first full hour in the window
    # Grid points before the anchor, within the window (only when slot_minutes divides 60).
    while anchor - step >= first:
        anchor -= step
    starts = []
    at = anchor
    while at + step <= last:
        starts.append(at)
        at += step
    return starts


def slots_between(facility: Facility, start: float, end: float) -> list[Slot]:
    """Every slot of ``facility`` starting in ``[start, end)``, in time order."""
    tz = ZoneInfo(facility.timezone)
    minutes = facility.visits.slot_minutes
    length = minutes * 60
    first_day = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)  # overnight spans
    last_day = datetime.fromtimestamp(end, tz).date()
    starts: set[int] = set()
    day = first_day
    while day <= last_day:
        for window in facility.calling_hours:
            span = _window_spans(window, day)
            if span is None:
                continue
            for wall in _wall_starts(span, minutes):
                starts.update(_instants(wall, tz))
        day += timedelta(days=1)
    slots: list[Slot] = []
    previous_end = 0
    for at in sorted(starts):
        if at < previous_end:
            continue  # would overlap the slot before it (the repeated hour, long slots)
        previous_end = at + length
        if start <= at < end:
            slots.append(Slot(at, at + length, local_iso(at, tz), local_iso(at + length, tz)))
        elif at >= end:
            break
    return slots


def slot_at(facility: Facility, start: float) -> Slot | None:
    """The slot starting exactly at ``start``, if there is one."""
    if start != int(start):
        return None
    found = slots_between(facility, start, start + 1)
    return found[0] if found and found[0].start == start else None


def week_bounds(facility: Facility, at: float) -> tuple[int, int]:
    """The local Monday-to-Sunday week holding ``at``: its first and first-after instants."""
    tz = ZoneInfo(facility.timezone)
    day = datetime.fromtimestamp(at, tz).date()
    monday = day - timedelta(days=day.weekday())
    begin = datetime.combine(monday, time(0), tzinfo=tz)
    after = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    return int(begin.timestamp()), int(after.timestamp())
