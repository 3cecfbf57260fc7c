"""``CallingWindow.contains`` and ``Facility.is_open``: overnight windows, wrapping day ranges,
the boundaries, and the facility's own time zone (a DST change day included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain import CallingWindow, Facility

# 2026-12-07 is a Monday.
MON = datetime(2026, 12, 7)


def at(weekday: int, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return MON + timedelta(days=weekday, hours=hours, minutes=minutes)


def test_day_window_boundaries_start_inclusive_end_exclusive() -> None:
    window = CallingWindow(days="mon-fri", start="08:00", end="17:00")
    assert not window.contains(at(0, "07:59"))
    assert window.contains(at(0, "08:00"))
    assert window.contains(at(0, "16:59"))
    assert not window.contains(at(0, "17:00"))
    assert window.contains(at(4, "12:00"))  # friday
    assert not window.contains(at(5, "12:00"))  # saturday
    assert not window.contains(at(6, "12:00"))  # sunday


def test_overnight_window_runs_into_the_next_day() -> None:
    window = CallingWindow(days="fri", start="22:00", end="02:00")
    assert not window.contains(at(4, "21:59"))
    assert window.contains(at(4, "22:00"))
    assert window.contains(at(4, "23:59"))
    assert window.contains(at(5, "00:00"))  # saturday, the part after midnight
    assert window.contains(at(5, "01:59"))
    assert not window.contains(at(5, "02:00"))
    assert not window.contains(at(5, "22:30"))  # saturday is not in the days
    assert not window.contains(at(4, "01:00"))  # thursday's night was not in the days


def test_end_equal_to_start_is_a_whole_day_into_the_next() -> None:
    window = CallingWindow(days="mon", start="09:00", end="09:00")
    assert window.contains(at(0, "09:00"))
    assert window.contains(at(1, "08:59"))
    assert not window.contains(at(1, "09:00"))
    assert not window.contains(at(0, "08:59"))


def test_until_24_00_covers_the_last_minute() -> None:
    window = CallingWindow(days="sun", start="20:00", end="24:00")
    assert window.contains(at(6, "23:59"))
    assert not window.contains(at(7, "00:00"))  # the next monday


def test_fri_mon_wraps_the_week() -> None:
    window = CallingWindow(days="fri-mon", start="10:00", end="12:00")
    inside = [wd for wd in range(7) if window.contains(at(wd, "11:00"))]
    assert inside == [0, 4, 5, 6]  # mon, fri, sat, sun
    assert window.minutes_on(1) is None and window.minutes_on(4) == (600, 720)


def test_overnight_fri_mon_ends_on_tuesday_morning() -> None:
    window = CallingWindow(days="fri-mon", start="23:00", end="01:00")
    assert window.contains(at(1, "00:30"))  # monday's night, into tuesday
    assert not window.contains(at(2, "00:30"))  # tuesday's night is not in the days
    assert window.contains(at(4, "23:30")) and not window.contains(at(4, "00:30"))
    assert window.minutes_on(0) == (23 * 60, 25 * 60)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mon-sun", {0, 1, 2, 3, 4, 5, 6}),
        ("sat,sun", {5, 6}),
        ("sun-sun", {6}),
        ("sun-mon", {6, 0}),
        ("wed", {2}),
        ("Mon - Wed, fri", {0, 1, 2, 4}),
    ],
)
def test_day_specs(spec: str, expected: set[int]) -> None:
    window = CallingWindow(days=spec, start="00:00", end="24:00")
    assert {wd for wd in range(7) if window.contains(at(wd, "12:00"))} == expected


@pytest.mark.parametrize("bad", [{"days": "mon-xyz"}, {"days": "funday"}, {"start": "25:00"}])
def test_bad_windows_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        CallingWindow(**{"start": "08:00", "end": "17:00", **bad})


minutes_of_day = st.integers(min_value=0, max_value=24 * 60 - 1)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@given(start=minutes_of_day, end=minutes_of_day, weekday=st.integers(0, 6), now=minutes_of_day)
def test_contains_agrees_with_minutes_on(start: int, end: int, weekday: int, now: int) -> None:
    """A minute is inside iff it lies in the span ``minutes_on`` gives for its own day, or in
    the part of the previous day's span past midnight."""
    window = CallingWindow(days="mon,wed,fri-sat", start=hhmm(start), end=hhmm(end))
    today = window.minutes_on(weekday)
    yesterday = window.minutes_on((weekday - 1) % 7)
    expected = (today is not None and today[0] <= now < today[1]) or (
        yesterday is not None and yesterday[0] <= now + 24 * 60 < yesterday[1]
    )
    assert window.contains(at(weekday, hhmm(now))) is expected


def facility(timezone: str, *windows: CallingWindow) -> Facility:
    return Facility(
        id="FX",
        name="Facility X",
        timezone=timezone,
        rate_cents_per_minute=25,
        max_call_seconds=1800,
        calling_hours=list(windows),
    )


def test_is_open_reads_the_facilitys_local_time() -> None:
    open_9_to_17 = facility("America/New_York", CallingWindow(start="09:00", end="17:00"))
    # 14:30 UTC on a December Monday is 09:30 in New York (EST, UTC-5).
    assert open_9_to_17.is_open(datetime(2026, 12, 7, 14, 30, tzinfo=UTC))
    assert not open_9_to_17.is_open(datetime(2026, 12, 7, 13, 59, tzinfo=UTC))
    assert not open_9_to_17.is_open(datetime(2026, 12, 7, 22, 0, tzinfo=UTC))  # 17:00 local
    tokyo = facility("Asia/Tokyo", CallingWindow(days="tue", start="08:00", end="09:00"))
    # Monday 23:30 UTC is Tuesday 08:30 in Tokyo.
    assert tokyo.is_open(datetime(2026, 12, 7, 23, 30, tzinfo=UTC))


def test_is_open_on_the_day_clocks_go_forward() -> None:
    """2026-03-08, New York: 02:00 EST jumps to 03:00 EDT. A window 01:00-04:00 local lasts two
    real hours that day; the UTC instants map to the wall clock, not to a fixed offset."""
    ny = facility("America/New_York", CallingWindow(days="sun", start="01:00", end="04:00"))
    assert not ny.is_open(datetime(2026, 3, 8, 5, 59, tzinfo=UTC))  # 00:59 EST
    assert ny.is_open(datetime(2026, 3, 8, 6, 0, tzinfo=UTC))  # 01:00 EST
    assert ny.is_open(datetime(2026, 3, 8, 6, 59, tzinfo=UTC))  # 01:59 EST
    assert ny.is_open(datetime(2026, 3, 8, 7, 0, tzinfo=UTC))  # 03:00 EDT (no 02:xx today)
    assert ny.is_open(datetime(2026, 3, 8, 7, 59, tzinfo=UTC))  # 03:59 EDT
    assert not ny.is_open(datetime(2026, 3, 8, 8, 0, tzinfo=UTC))  # 04:00 EDT
    opened = [
        minute
        for minute in range(0, 6 * 60)
        if ny.is_open(datetime(2026, 3, 8, 4, 0, tzinfo=UTC) + timedelta(minutes=minute))
    ]
    assert len(opened) == 120  # two real hours, not three


def test_is_open_on_the_day_clocks_go_back() -> None:
    """2026-11-01, New York: 02:00 EDT falls back to 01:00 EST; 01:xx happens twice, and a
    window 01:00-02:00 local is open for both (two real hours)."""
    ny = facility("America/New_York", CallingWindow(days="sun", start="01:00", end="02:00"))
    assert ny.is_open(datetime(2026, 11, 1, 5, 0, tzinfo=UTC))  # 01:00 EDT
    assert ny.is_open(datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST, the second time
    assert not ny.is_open(datetime(2026, 11, 1, 7, 0, tzinfo=UTC))  # 02:00 EST
    start = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    opened = [m for m in range(6 * 60) if ny.is_open(start + timedelta(minutes=m))]
    assert len(opened) == 120


def test_local_time_zone_is_the_facilitys_not_the_hosts() -> None:
    zone = ZoneInfo("Europe/Berlin")
    berlin = facility("Europe/Berlin", CallingWindow(days="mon", start="00:00", end="01:00"))
    local_midnight = datetime(2026, 12, 7, 0, 30, tzinfo=zone)
    assert berlin.is_open(local_midnight)
    assert berlin.is_open(local_midnight.astimezone(UTC))  # Sunday 23:30 UTC, same instant
