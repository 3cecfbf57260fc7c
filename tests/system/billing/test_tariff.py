"""SPEC "Call rules" 4 and 6 as pure arithmetic: exhaustive over the seconds, plus properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tariff import allowed_seconds, billable_minutes, charge_cents, hold_cents

REASONS = ["hangup", "time_limit", "terminated", "connection_lost", "server_shutdown"]
DROPPED = {"connection_lost", "server_shutdown"}


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("rate", [1, 16, 25, 44])
def test_charge_every_second_of_two_hours(reason: str, rate: int) -> None:
    big_hold = 10**9
    previous = 0
    for seconds in range(0, 2 * 3600 + 1):
        charged = charge_cents(seconds, rate, reason, big_hold)
        if seconds < 10:
            expected = 0
        elif reason in DROPPED:
            expected = (seconds // 60) * rate
        else:
            expected = math.ceil(seconds / 60) * rate
        assert charged == expected, (seconds, rate, reason)
        assert charged >= previous  # never cheaper for talking longer
        previous = charged


def test_examples() -> None:
    assert charge_cents(9, 16, "hangup", 1000) == 0
    assert charge_cents(10, 16, "hangup", 1000) == 16
    assert charge_cents(60, 16, "hangup", 1000) == 16
    assert charge_cents(61, 16, "hangup", 1000) == 32
    assert charge_cents(61, 16, "connection_lost", 1000) == 16
    assert charge_cents(59, 16, "server_shutdown", 1000) == 0
    assert charge_cents(120, 16, "server_shutdown", 1000) == 32
    assert charge_cents(3600, 16, "time_limit", 100) == 100  # never more than the hold
    assert billable_minutes(125, "terminated") == 3


@given(
    seconds=st.integers(0, 10 * 3600),
    rate=st.integers(1, 500),
    reason=st.sampled_from(REASONS),
    hold=st.integers(0, 10**6),
)
@settings(max_examples=300, deadline=None)
def test_charge_properties(seconds: int, rate: int, reason: str, hold: int) -> None:
    charged = charge_cents(seconds, rate, reason, hold)
    assert 0 <= charged <= hold
    assert charged % rate == 0 or charged == hold
    assert charged <= math.ceil(seconds / 60) * rate
    if reason in DROPPED:
        assert charged <= charge_cents(seconds, rate, "hangup", hold)


@given(
    max_call=st.integers(0, 4 * 3600),
    available=st.integers(0, 10**6),
    rate=st.integers(1, 500),
)
@settings(max_examples=500, deadline=None)
def test_allowance_is_the_most_the_balance_pays_for(
    max_call: int, available: int, rate: int
) -> None:
    allowed = allowed_seconds(max_call, available, rate)
    assert allowed == min(max_call, (available // rate) * 60)
    hold = hold_cents(allowed, rate)
    assert hold <= available  # the hold never overdraws
    # Talking the whole allowance (or a little over: a late timer) costs exactly the hold at most.
    assert charge_cents(allowed + 5, rate, "time_limit", hold) <= hold
    if allowed % 60 == 0:
        assert charge_cents(allowed, rate, "time_limit", hold) == hold or allowed < 10
    # Maximal: either the facility cap binds, or one more minute is not affordable.
    assert allowed == max_call or available - (allowed // 60) * rate < rate


def test_one_minute_needs_one_rate() -> None:
    assert allowed_seconds(1800, 15, 16) == 0
    assert allowed_seconds(1800, 16, 16) == 60
    assert allowed_seconds(1800, 1000, 16) == 1800  # 62 minutes affordable, 30 allowed
    assert allowed_seconds(7200, 1000, 16) == 62 * 60
    assert allowed_seconds(1830, 10**6, 16) == 1830
    assert hold_cents(1830, 16) == 31 * 16


@pytest.mark.parametrize(
    "call",
    [
        lambda: charge_cents(-1, 16, "hangup", 100),
        lambda: charge_cents(10, -1, "hangup", 100),
        lambda: charge_cents(10, 16, "hangup", -1),
        lambda: charge_cents(10.5, 16, "hangup", 100),  # type: ignore[arg-type]
        lambda: charge_cents(True, 16, "hangup", 100),
        lambda: allowed_seconds(1800, -5, 16),
        lambda: allowed_seconds(1800, 100, -1),
        lambda: hold_cents(60, -1),
    ],
)
def test_bad_input_is_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_the_free_window_is_a_parameter_that_defaults_to_the_product_rule() -> None:
    assert billable_minutes(9, "hangup") == 0  # FREE_UNDER_S = 10
    assert billable_minutes(9, "hangup", free_under_s=1) == 1
    assert billable_minutes(0, "hangup", free_under_s=0) == 0
    assert charge_cents(5, 16, "hangup", 160, free_under_s=1) == 16
    with pytest.raises(ValueError, match="free_under_s"):
        billable_minutes(30, "hangup", free_under_s=-1)


def test_a_rate_of_zero_is_free() -> None:
    """An agency-paid facility's rate may be 0 (PROTOCOL v1.2): only the cap limits the call."""
    assert allowed_seconds(1800, 0, 0) == 1800
    assert hold_cents(1800, 0) == 0
    assert charge_cents(1800, 0, "hangup", 0) == 0
