"""Pricing plans as pure arithmetic (SPEC "Who pays"): quotes at connect, splits at the end,
the periods of the allowance in the facility's time zone. Examples plus hypothesis properties."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tariff import (
    UNCHARGED_LAST_MINUTE,
    Period,
    Plan,
    period_ends_at,
    period_key,
    quote,
    refusal,
    split,
)

REASONS = ["hangup", "time_limit", "terminated", "connection_lost", "server_shutdown"]
MONTANA = Plan(payer="family", free_minutes=10, free_period="week")
CONNECTICUT = Plan(payer="agency", max_minutes_per_day=90)


def _at(tz: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[arg-type,misc]


def test_montana_first_call_of_the_week_is_free_for_ten_minutes_then_25_cents() -> None:
    q = quote(MONTANA, 1800, 1000, 25, free_remaining_s=600)
    assert q.free_seconds == 600
    assert q.allowed_seconds == 600 + 1200  # the cap: 30 min; $10 pays 40 more minutes
    assert q.hold_cents == 20 * 25  # the paid part only
    s = split(12 * 60, "hangup", q.free_seconds, 25, q.hold_cents)
    assert s == (s.__class__(agency_seconds=600, charged_cents=2 * 25))
    # The second call of the week: nothing free any more.
    q2 = quote(MONTANA, 1800, 1000, 25, free_remaining_s=0)
    assert (q2.free_seconds, q2.hold_cents) == (0, 1800 // 60 * 25)
    assert split(12 * 60, "hangup", 0, 25, q2.hold_cents).charged_cents == 12 * 25


def test_rounding_applies_to_the_paid_part_only() -> None:
    assert split(605, "hangup", 600, 25, 10_000).charged_cents == 25  # 5 paid s: one minute
    assert split(605, "connection_lost", 600, 25, 10_000).charged_cents == 0  # dropped credit
    assert split(600, "hangup", 600, 25, 10_000).charged_cents == 0
    assert split(9, "hangup", 0, 25, 10_000).charged_cents == 0  # the free first 10 s
    # ... are talk time of the agency's all the same (a cap is never passed by short calls).
    short = split(9, "hangup", 600, 25, 10_000)
    assert (short.agency_seconds, short.charged_cents) == (9, 0)
    assert split(30, "hangup", 600, 25, 10_000).agency_seconds == 30


def test_connecticut_agency_pays_everything_up_to_the_daily_cap() -> None:
    q = quote(CONNECTICUT, 1800, 0, 0, free_remaining_s=90 * 60)
    assert q == q.__class__(1800, 1800, 0)
    q = quote(CONNECTICUT, 1800, 0, 0, free_remaining_s=25 * 60)
    assert (q.allowed_seconds, q.free_seconds, q.hold_cents) == (1500, 1500, 0)
    assert split(1500, "time_limit", q.free_seconds, 0, 0) == split(1500, "hangup", 1500, 0, 0)
    assert split(1500, "time_limit", 1500, 0, 0).charged_cents == 0
    assert refusal(CONNECTICUT, 0, 0, 0) == "quota_exhausted"
    assert refusal(CONNECTICUT, 0, 0, 5) is None
    assert refusal(Plan(payer="agency"), 0, 0, None) is None  # no cap
    assert quote(Plan(payer="agency"), 1800, 0, 0, None).allowed_seconds == 1800


def test_a_call_rings_when_the_allowance_or_the_balance_pays_a_minute() -> None:
    assert refusal(MONTANA, 0, 25, 600) is None
    assert refusal(MONTANA, 0, 25, 59) == "insufficient_funds"
    assert refusal(MONTANA, 25, 25, 0) is None
    assert refusal(Plan(), 24, 25, None) == "insufficient_funds"


def test_periods_follow_the_facility_clock() -> None:
    tz = "America/Denver"
    sunday_late = _at(tz, 2026, 12, 6, 23, 59, 59)
    monday = _at(tz, 2026, 12, 7, 0, 0, 0)
    assert period_key("week", tz, sunday_late) == "week:2026-11-30"
    assert period_key("week", tz, monday) == "week:2026-12-07"
    assert period_key("week", tz, _at(tz, 2026, 12, 13, 23, 0, 0)) == "week:2026-12-07"
    assert period_ends_at("week", tz, sunday_late) == monday
    assert period_key("day", tz, sunday_late) == "day:2026-12-06"
    assert period_key("day", tz, monday) == "day:2026-12-07"
    assert period_ends_at("day", tz, sunday_late) == monday
    # Local, not UTC: 23:30 in Denver is already tomorrow in UTC.
    assert period_key("day", tz, _at(tz, 2026, 12, 7, 23, 30, 0)) == "day:2026-12-07"
    # A DST change makes a 23-hour day; the period still ends at local midnight.
    ny = "America/New_York"
    assert period_ends_at("day", ny, _at(ny, 2026, 3, 8, 12, 0, 0)) == _at(ny, 2026, 3, 9, 0, 0, 0)
    assert (
        period_ends_at("day", ny, _at(ny, 2026, 3, 8, 0, 0, 0)) - _at(ny, 2026, 3, 8, 0, 0, 0)
        == 23 * 3600
    )


plans = st.one_of(
    st.builds(
        Plan,
        payer=st.just("family"),
        free_minutes=st.integers(0, 120),
        free_period=st.sampled_from(["day", "week"]),
    ),
    st.builds(
        Plan, payer=st.just("agency"), max_minutes_per_day=st.one_of(st.none(), st.integers(1, 600))
    ),
)


@given(
    plan=plans,
    max_call=st.integers(60, 4 * 3600),
    available=st.integers(0, 100_000),
    rate=st.integers(1, 500),
    used=st.integers(0, 40_000),
    seconds_past=st.integers(-30, 4 * 3600),
    reason=st.sampled_from(REASONS),
    free_under_s=st.sampled_from([0, 2, 10]),
)
@settings(max_examples=500, deadline=None)
def test_charge_plus_agency_part_is_what_the_rules_say(
    plan: Plan,
    max_call: int,
    available: int,
    rate: int,
    used: int,
    seconds_past: int,
    reason: str,
    free_under_s: int,
) -> None:
    rate = 0 if plan.payer == "agency" else rate
    limit = plan.allowance_s
    remaining = None if limit is None else max(0, limit - used)
    q = quote(plan, max_call, available, rate, remaining)
    # allowed_seconds counts both parts; the free part never exceeds what remains.
    assert q.allowed_seconds <= max_call
    assert 0 <= q.free_seconds <= q.allowed_seconds
    if remaining is not None:
        assert q.free_seconds <= remaining
    # The hold covers the paid part only, at the rate, and the balance pays for it.
    assert q.hold_cents == math.ceil(q.paid_seconds / 60) * rate
    assert q.hold_cents <= available
    connected = max(0, min(q.allowed_seconds + 5, q.allowed_seconds + seconds_past))
    s = split(connected, reason, q.free_seconds, rate, q.hold_cents, free_under_s)
    # Never above the hold; the agency part never above what was reserved.
    assert 0 <= s.charged_cents <= q.hold_cents
    assert 0 <= s.agency_seconds <= min(q.free_seconds, connected)
    # What the rules say: under the free window nothing; else agency first, then started
    # (or, dropped, whole) minutes of the rest at the rate, capped by the hold.
    assert s.agency_seconds == min(connected, q.free_seconds)
    if connected < free_under_s:
        assert s.charged_cents == 0
        return
    paid = connected - s.agency_seconds
    minutes = paid // 60 if reason in UNCHARGED_LAST_MINUTE else math.ceil(paid / 60)
    assert s.charged_cents == min(minutes * rate, q.hold_cents)
    if plan.payer == "agency":
        assert s.charged_cents == 0
    if connected <= q.allowed_seconds and reason not in UNCHARGED_LAST_MINUTE:
        assert s.charged_cents == minutes * rate  # within the allowance the hold always pays


@given(
    at=st.floats(0, 4e9, allow_nan=False),
    tz=st.sampled_from(
        ["America/Denver", "America/New_York", "Pacific/Auckland", "UTC", "Asia/Kolkata"]
    ),
)
@settings(max_examples=300, deadline=None)
def test_a_period_holds_its_instant_and_ends_at_a_local_midnight(at: float, tz: str) -> None:
    periods: tuple[Period, ...] = ("day", "week")
    for period in periods:
        end = period_ends_at(period, tz, at)
        assert at < end <= at + (7 if period == "week" else 1) * 86400 + 3600
        assert period_key(period, tz, end - 0.001) == period_key(period, tz, at)
        assert period_key(period, tz, end) != period_key(period, tz, at)
        local = datetime.fromtimestamp(end, ZoneInfo(tz))
        assert (local.hour, local.minute) == (0, 0) or local.tzinfo is None
        if period == "week":
            assert local.weekday() == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        quote(MONTANA, 1800, -1, 25, 0)
    with pytest.raises(ValueError):
        split(-1, "hangup", 0, 25, 0)
    with pytest.raises(ValueError):
        refusal(MONTANA, 0, 0, 0)  # a family-paid plan needs a rate
