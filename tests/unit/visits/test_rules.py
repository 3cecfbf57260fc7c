"""The slot and booking rules, pure: no Redis, no clock but the ``now`` each test passes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain import Facility
from visits.record import Visit, VisitStatus
from visits.rules import (
    Holds,
    Refusal,
    check_cancel,
    check_holds,
    check_slot,
    initial_status,
    is_due,
    outcome,
    reminder_times,
    seconds_left,
    staff_change_allowed,
)
from visits.slots import slot_at, slots_between, week_bounds

LA = ZoneInfo("America/Los_Angeles")


def facility(
    hours: list[dict[str, str]] | None = None, tz: str = "America/Los_Angeles", **visits: Any
) -> Facility:
    return Facility.model_validate(
        {
            "id": "F",
            "name": "Test",
            "timezone": tz,
            "rate_cents_per_minute": 10,
            "max_call_seconds": 1800,
            "calling_hours": hours or [{"days": "mon-sun", "start": "09:00", "end": "11:00"}],
            "visits": {"mode": "both", **visits},
        }
    )


def local(
    y: int, m: int, d: int, hh: int = 0, mm: int = 0, tz: ZoneInfo = LA, fold: int = 0
) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=tz, fold=fold).timestamp())


def day_slots(f: Facility, day: date, tz: ZoneInfo = LA) -> list[Any]:
    begin = int(datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp())
    after = int(
        datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz).timestamp()
    )
    return slots_between(f, begin, after)


ALL_DAY = [{"days": "mon-sun", "start": "00:00", "end": "24:00"}]


# -- slots ----------------------------------------------------------------------------------


def test_slots_start_on_the_hour_every_slot_minutes_within_hours() -> None:
    f = facility()
    slots = day_slots(f, date(2026, 12, 8))
    assert [s.start_local for s in slots] == [
        "2026-12-08T09:00:00-08:00",
        "2026-12-08T09:30:00-08:00",
        "2026-12-08T10:00:00-08:00",
        "2026-12-08T10:30:00-08:00",
    ]
    assert all(s.end - s.start == 1800 for s in slots)
    assert slots[-1].end_local == "2026-12-08T11:00:00-08:00"


def test_a_window_starting_off_the_hour_keeps_the_hour_grid() -> None:
    f = facility([{"days": "mon-sun", "start": "08:40", "end": "10:10"}], slot_minutes=20)
    starts = [s.start_local[11:16] for s in day_slots(f, date(2026, 12, 8))]
    assert starts == ["08:40", "09:00", "09:20", "09:40"]  # 10:00 + 20 min is past 10:10


def test_long_slots_start_on_the_first_full_hour() -> None:
    f = facility([{"days": "mon-sun", "start": "09:30", "end": "17:00"}], slot_minutes=120)
    starts = [s.start_local[11:16] for s in day_slots(f, date(2026, 12, 8))]
    assert starts == ["10:00", "12:00", "14:00"]


def test_spring_forward_23_hour_day_has_no_slot_in_the_missing_hour() -> None:
    f = facility(ALL_DAY, slot_minutes=60)
    slots = day_slots(f, date(2026, 3, 8))
    assert len(slots) == 23
    assert not [s for s in slots if s.start_local[11:13] == "02"]
    assert [b.start - a.start for a, b in itertools.pairwise(slots)] == [3600] * 22
    assert slots[1].start_local == "2026-03-08T01:00:00-08:00"
    assert slots[2].start_local == "2026-03-08T03:00:00-07:00"


def test_spring_forward_half_hour_slots_skip_the_gap() -> None:
    f = facility([{"days": "sun", "start": "01:00", "end": "04:00"}])
    starts = [s.start_local for s in day_slots(f, date(2026, 3, 8))]
    assert starts == [
        "2026-03-08T01:00:00-08:00",
        "2026-03-08T01:30:00-08:00",
        "2026-03-08T03:00:00-07:00",
        "2026-03-08T03:30:00-07:00",
    ]


def test_fall_back_25_hour_day_repeats_the_hour_with_distinct_utc_starts() -> None:
    f = facility(ALL_DAY, slot_minutes=60)
    slots = day_slots(f, date(2026, 11, 1))
    assert len(slots) == 25
    ones = [s for s in slots if s.start_local[11:13] == "01"]
    assert [s.start_local for s in ones] == [
        "2026-11-01T01:00:00-07:00",
        "2026-11-01T01:00:00-08:00",
    ]
    assert ones[1].start - ones[0].start == 3600
    assert len({s.start for s in slots}) == 25


def test_long_slots_in_the_repeated_hour_never_overlap() -> None:
    f = facility([{"days": "sat", "start": "23:00", "end": "05:00"}], slot_minutes=120)
    slots = slots_between(f, local(2026, 10, 31, 12), local(2026, 11, 1, 12))
    assert all(a.end <= b.start for a, b in itertools.pairwise(slots))
    assert slots[0].start_local == "2026-10-31T23:00:00-07:00"
    assert "2026-11-01T01:00:00-07:00" in [s.start_local for s in slots]


def test_a_week_across_dst_in_los_angeles() -> None:
    f = facility([{"days": "mon-sun", "start": "09:00", "end": "17:00"}])
    slots = slots_between(f, local(2026, 3, 2), local(2026, 3, 9))  # Monday to Monday
    assert len(slots) == 7 * 16
    by_day: dict[str, list[str]] = {}
    for s in slots:
        by_day.setdefault(s.start_local[:10], []).append(s.start_local[19:])
    assert set(by_day["2026-03-07"]) == {"-08:00"}
    assert set(by_day["2026-03-08"]) == {"-07:00"}  # the same wall times, an hour less UTC
    first_sun = next(s for s in slots if s.start_local.startswith("2026-03-08"))
    first_sat = next(s for s in slots if s.start_local.startswith("2026-03-07"))
    assert first_sun.start - first_sat.start == 23 * 3600
    begin, after = week_bounds(f, first_sun.start)
    assert (begin, after) == (local(2026, 3, 2), local(2026, 3, 9))
    assert after - begin == 167 * 3600  # a 167 h week


def test_overnight_calling_hours() -> None:
    f = facility([{"days": "fri", "start": "22:00", "end": "02:00"}], slot_minutes=60)
    slots = slots_between(f, local(2026, 12, 10), local(2026, 12, 14))
    assert [s.start_local for s in slots] == [
        "2026-12-11T22:00:00-08:00",
        "2026-12-11T23:00:00-08:00",
        "2026-12-12T00:00:00-08:00",
        "2026-12-12T01:00:00-08:00",
    ]
    assert all(f.is_open(datetime.fromtimestamp(s.start, UTC)) for s in slots)


def test_slot_at_finds_only_exact_slot_starts() -> None:
    f = facility()
    start = local(2026, 12, 8, 9, 30)
    slot = slot_at(f, start)
    assert slot is not None and slot.start == start
    assert slot_at(f, start + 60) is None
    assert slot_at(f, local(2026, 12, 8, 11)) is None  # the window's end
    assert slot_at(f, start + 0.5) is None


# -- the week ---------------------------------------------------------------------------------


def test_the_week_is_monday_to_sunday_local() -> None:
    f = facility(ALL_DAY)
    sunday_late = local(2026, 12, 13, 23, 30)
    monday = local(2026, 12, 14, 0, 0)
    assert week_bounds(f, sunday_late) == (local(2026, 12, 7), monday)
    assert week_bounds(f, monday) == (monday, local(2026, 12, 21))
    # In UTC the Sunday-night slot is already Monday; the local week still holds it.
    assert datetime.fromtimestamp(sunday_late, UTC).weekday() == 0


def test_a_fall_back_week_is_169_hours() -> None:
    f = facility(ALL_DAY)
    begin, after = week_bounds(f, local(2026, 11, 1, 12))
    assert after - begin == 169 * 3600


# -- booking limits ----------------------------------------------------------------------------


NOW = local(2026, 12, 1, 12)  # Tuesday noon


def test_check_slot_codes_in_order() -> None:
    slot = local(2026, 12, 8, 9)
    with pytest.raises(Refusal) as caught:
        check_slot(facility(mode="on_demand"), slot, NOW)
    assert (caught.value.code, caught.value.status) == ("not_scheduled", 422)
    with pytest.raises(Refusal) as caught:
        check_slot(facility(), slot + 15 * 60, NOW)
    assert (caught.value.code, caught.value.status) == ("outside_hours", 422)
    f = facility(min_notice_hours=12, max_advance_days=14)
    with pytest.raises(Refusal) as caught:
        check_slot(f, local(2026, 12, 1, 9), NOW)  # this morning: past
    assert (caught.value.code, caught.value.status) == ("too_soon", 409)
    with pytest.raises(Refusal) as caught:
        check_slot(f, local(2026, 12, 16, 9), NOW)
    assert (caught.value.code, caught.value.status) == ("too_far", 409)
    assert check_slot(f, slot, NOW).start == slot


def test_notice_and_horizon_boundaries() -> None:
    f = facility(min_notice_hours=12, max_advance_days=14)
    slot = local(2026, 12, 8, 9)
    assert check_slot(f, slot, slot - 12 * 3600).start == slot  # exactly the notice
    with pytest.raises(Refusal, match="too soon"):
        check_slot(f, slot, slot - 12 * 3600 + 1)
    assert check_slot(f, slot, slot - 14 * 86400).start == slot  # exactly the horizon
    with pytest.raises(Refusal, match="too far"):
        check_slot(f, slot, slot - 14 * 86400 - 1)
    zero = facility(min_notice_hours=0)
    assert check_slot(zero, slot, slot).start == slot


@pytest.mark.parametrize(
    ("holds", "code"),
    [
        (Holds(0, 0, True, False), "conflict"),
        (Holds(0, 0, False, True), "conflict"),
        (Holds(10, 3, True, True), "conflict"),
        (Holds(10, 3, False, False), "weekly_limit"),
        (Holds(10, 2, False, False), "slot_full"),
        (Holds(9, 2, False, False), None),
    ],
)
def test_check_holds(holds: Holds, code: str | None) -> None:
    settings_ = facility(max_per_week=3, concurrent=10).visits
    if code is None:
        check_holds(settings_, holds)
        return
    with pytest.raises(Refusal) as caught:
        check_holds(settings_, holds)
    assert caught.value.code == code and caught.value.status == 409


def test_approval_makes_pending() -> None:
    assert initial_status(facility().visits) == VisitStatus.BOOKED
    assert initial_status(facility(requires_approval=True).visits) == VisitStatus.PENDING


def visit(status: VisitStatus = VisitStatus.BOOKED, **kw: Any) -> Visit:
    start = local(2026, 12, 8, 9)
    values: dict[str, Any] = {
        "visit_id": "v1",
        "facility_id": "F",
        "resident_id": "R",
        "family_id": "FAM",
        "start": start,
        "end": start + 1800,
        "status": status,
        "timezone": "America/Los_Angeles",
        "cancel_cutoff_s": 24 * 3600,
        **kw,
    }
    return Visit(**values)


def test_cancellation_cutoff() -> None:
    v = visit()
    check_cancel(v, v.start - 24 * 3600)  # exactly the cutoff
    with pytest.raises(Refusal) as caught:
        check_cancel(v, v.start - 24 * 3600 + 1)
    assert (caught.value.code, caught.value.status) == ("too_late_to_cancel", 409)
    with pytest.raises(Refusal):
        check_cancel(visit(VisitStatus.CANCELED), 0)
    check_cancel(visit(VisitStatus.PENDING), v.start - 25 * 3600)


def test_due_window_and_seconds_left() -> None:
    v = visit()
    assert not is_due(v, v.start - 301)
    assert is_due(v, v.start - 300)
    assert is_due(v, v.end - 1)
    assert not is_due(v, v.end)
    assert not is_due(visit(VisitStatus.PENDING), v.start)
    assert seconds_left(v, v.start + 100) == 1700
    assert seconds_left(v, v.end + 5) == 0


def test_outcome_and_staff_changes() -> None:
    assert outcome(visit()) == VisitStatus.MISSED
    assert outcome(visit(connected=True)) == VisitStatus.COMPLETED
    assert outcome(visit(VisitStatus.PENDING)) == VisitStatus.CANCELED
    assert outcome(visit(VisitStatus.CANCELED)) is None
    assert staff_change_allowed(visit(VisitStatus.PENDING), VisitStatus.BOOKED)
    assert not staff_change_allowed(visit(), VisitStatus.BOOKED)
    assert staff_change_allowed(visit(), VisitStatus.CANCELED)
    assert not staff_change_allowed(visit(), VisitStatus.DENIED)
    assert not staff_change_allowed(visit(VisitStatus.MISSED), VisitStatus.CANCELED)


def test_reminders_still_ahead() -> None:
    v = visit()
    assert [b for b, _ in reminder_times(v, v.start - 2 * 86400)] == [86400, 900]
    assert [b for b, _ in reminder_times(v, v.start - 3600)] == [900]
    assert reminder_times(v, v.start - 60) == []


def test_slot_minutes_validation() -> None:
    for good in (5, 10, 15, 20, 30, 60, 120, 180, 240):
        facility(slot_minutes=good)
    for bad in (4, 7, 25, 45, 90, 250):
        with pytest.raises(ValueError):
            facility(slot_minutes=bad)


# -- properties -------------------------------------------------------------------------------

ZONES = ["America/Los_Angeles", "Europe/London", "Australia/Lord_Howe", "UTC", "America/St_Johns"]
SLOT_MINUTES = [5, 10, 15, 20, 30, 60, 120, 240]


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def a_facility(draw: st.DrawFn) -> Facility:
    start = draw(st.integers(0, 23 * 60)) // 5 * 5
    length = draw(st.integers(1, 24 * 60 // 5)) * 5
    end = (start + length) % (24 * 60)
    days = draw(st.sampled_from(["mon-sun", "mon-fri", "sat,sun", "fri-mon", "wed"]))
    return facility(
        [{"days": days, "start": hhmm(start), "end": hhmm(end)}],
        tz=draw(st.sampled_from(ZONES)),
        slot_minutes=draw(st.sampled_from(SLOT_MINUTES)),
    )


DST_DAYS = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2026, 11, 1),
]


@settings(max_examples=150, deadline=None)
@given(a_facility(), st.sampled_from(DST_DAYS), st.integers(-2, 2))
def test_slots_are_ordered_disjoint_within_hours_and_found_again(
    f: Facility, day: date, shift: int
) -> None:
    tz = ZoneInfo(f.timezone)
    begin = datetime.combine(day + timedelta(days=shift), datetime.min.time(), tzinfo=tz)
    slots = slots_between(f, begin.timestamp(), (begin + timedelta(days=3)).timestamp())
    minutes = f.visits.slot_minutes
    for a, b in itertools.pairwise(slots):
        assert a.end <= b.start
    for s in slots:
        assert s.end - s.start == minutes * 60
        wall = datetime.fromtimestamp(s.start, tz)
        assert s.start_local == wall.isoformat(timespec="seconds")
        if 60 % minutes == 0:
            assert wall.minute % minutes == 0 and wall.second == 0
        else:
            assert wall.minute == 0
        assert f.is_open(datetime.fromtimestamp(s.start, UTC))
        assert slot_at(f, s.start) == s


@settings(max_examples=100, deadline=None)
@given(a_facility(), st.integers(0, 365 * 86400))
def test_the_week_holds_the_instant(f: Facility, offset: int) -> None:
    at = local(2026, 1, 1) + offset
    begin, after = week_bounds(f, at)
    assert begin <= at < after
    assert 166 * 3600 <= after - begin <= 170 * 3600
    assert datetime.fromtimestamp(begin, ZoneInfo(f.timezone)).weekday() == 0
