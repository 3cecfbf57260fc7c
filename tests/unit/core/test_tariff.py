"""``core.tariff``: allowed seconds, rounding to started minutes, the dropped-call credit, the
hold as a cap, plans, and allowance periods in the facility's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import tariff
from core.tariff import FREE_UNDER_S, Plan

cents = st.integers(min_value=0, max_value=10**7)
rates = st.integers(min_value=1, max_value=10_000)
caps = st.integers(min_value=60, max_value=4 * 3600)
seconds = st.integers(min_value=0, max_value=6 * 3600)


def test_allowed_seconds_examples() -> None:
    assert tariff.allowed_seconds(1800, 1000, 25) == 1800  # 40 minutes paid, capped at 30
    assert tariff.allowed_seconds(1800, 99, 25) == 180  # 3 whole minutes: floor, not round
    assert tariff.allowed_seconds(1800, 24, 25) == 0
    assert tariff.allowed_seconds(1800, 0, 0) == 1800  # free facility: only the cap


@given(cap=caps, available=cents, rate=rates)
def test_allowed_seconds_is_whole_minutes_the_balance_pays_within_the_cap(
    cap: int, available: int, rate: int
) -> None:
    allowed = tariff.allowed_seconds(cap, available, rate)
    assert 0 <= allowed <= cap
    if allowed < cap:
        assert allowed % 60 == 0
    hold = tariff.hold_cents(allowed, rate)
    assert hold <= available  # the hold never exceeds the balance it came from
    assert hold == -(-allowed // 60) * rate


@pytest.mark.parametrize(
    ("connected", "reason", "minutes"),
    [
        (0, "hangup", 0),
        (FREE_UNDER_S - 1, "hangup", 0),  # under the free window
        (FREE_UNDER_S, "hangup", 1),
        (60, "hangup", 1),
        (61, "hangup", 2),  # started minutes round up
        (61, "connection_lost", 1),  # a dropped call's last partial minute is free
        (119, "server_shutdown", 1),
        (120, "connection_lost", 2),
        (30, "connection_lost", 0),
    ],
)
def test_billable_minutes(connected: int, reason: str, minutes: int) -> None:
    assert tariff.billable_minutes(connected, reason) == minutes


@given(
    connected=seconds,
    rate=rates,
    hold=cents,
    reason=st.sampled_from(["hangup", "time_limit", "connection_lost", "server_shutdown"]),
)
def test_charge_is_started_minutes_at_the_rate_capped_by_the_hold(
    connected: int, rate: int, hold: int, reason: str
) -> None:
    charge = tariff.charge_cents(connected, rate, reason, hold)
    assert 0 <= charge <= hold
    assert charge % rate == 0 or charge == hold
    if connected < FREE_UNDER_S:
        assert charge == 0
    dropped = tariff.charge_cents(connected, rate, "connection_lost", hold)
    assert dropped <= tariff.charge_cents(connected, rate, "hangup", hold)


@given(a=seconds, b=seconds, rate=rates)
def test_longer_calls_never_cost_less(a: int, b: int, rate: int) -> None:
    short, long = sorted((a, b))
    hold = 10**9
    assert tariff.charge_cents(short, rate, "hangup", hold) <= tariff.charge_cents(
        long, rate, "hangup", hold
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: tariff.allowed_seconds(-1, 0, 1),
        lambda: tariff.allowed_seconds(60, 1.5, 1),  # type: ignore[arg-type]
        lambda: tariff.hold_cents(60, True),
        lambda: tariff.billable_minutes(-5, "hangup"),
    ],
)
def test_non_integer_or_negative_inputs_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_family_plan_with_free_minutes_quotes_free_first() -> None:
    plan = Plan("family", free_minutes=10)
    quote = tariff.quote(plan, 1800, 100, 25, free_remaining_s=300)
    assert quote.free_seconds == 300
    assert quote.paid_seconds == 240 and quote.hold_cents == 100  # 4 minutes paid
    assert quote.allowed_seconds == 540


def test_agency_plan_caps_by_the_remaining_allowance() -> None:
    plan = Plan("agency", max_minutes_per_day=20)
    assert plan.allowance_s == 1200 and plan.metered and plan.period == "day"
    quote = tariff.quote(plan, 1800, 0, 0, free_remaining_s=600)
    assert quote == tariff.Quote(600, 600, 0)
    assert tariff.refusal(plan, 0, 0, 0) == "quota_exhausted"
    assert tariff.refusal(Plan("agency"), 0, 0, None) is None
    assert not Plan("agency").metered and Plan("agency").allowance_s is None


def test_refusal_needs_one_minute_from_allowance_or_balance() -> None:
    family = Plan("family", free_minutes=5)
    assert tariff.refusal(family, 24, 25, 59) == "insufficient_funds"
    assert tariff.refusal(family, 25, 25, 0) is None
    assert tariff.refusal(family, 0, 25, 60) is None


@given(connected=seconds, free=seconds, rate=rates, hold=cents)
def test_split_agency_first_family_capped(connected: int, free: int, rate: int, hold: int) -> None:
    result = tariff.split(connected, "hangup", free, rate, hold)
    assert result.agency_seconds == min(connected, free)
    assert 0 <= result.charged_cents <= hold
    if connected <= free or connected < FREE_UNDER_S:
        assert result.charged_cents == 0


def test_periods_follow_the_facilitys_local_calendar() -> None:
    zone = ZoneInfo("America/Los_Angeles")
    late_sunday = datetime(2026, 12, 6, 23, 30, tzinfo=zone).timestamp()  # Monday 07:30 UTC
    assert tariff.period_key("day", "America/Los_Angeles", late_sunday) == "day:2026-12-06"
    assert tariff.period_key("week", "America/Los_Angeles", late_sunday) == "week:2026-11-30"
    assert tariff.period_ends_at("day", "America/Los_Angeles", late_sunday) == (
        datetime(2026, 12, 7, tzinfo=zone).timestamp()
    )
    assert tariff.period_ends_at("week", "America/Los_Angeles", late_sunday) == (
        datetime(2026, 12, 7, tzinfo=zone).timestamp()
    )


def test_a_day_period_across_dst_is_23_hours() -> None:
    spring = datetime(2026, 3, 8, 0, 30, tzinfo=ZoneInfo("America/New_York")).timestamp()
    ends = tariff.period_ends_at("day", "America/New_York", spring)
    assert ends - spring == 22.5 * 3600  # midnight to midnight is 23 h that day
