"""Pure tariff arithmetic for SPEC "Call rules" 4 and 6. Integer cents and seconds only."""

from __future__ import annotations

from typing import Final

FREE_UNDER_S: Final = 10
"""A call connected for less than this many seconds is free."""

UNCHARGED_LAST_MINUTE: Final = frozenset({"connection_lost", "server_shutdown"})
"""End reasons whose last partial minute is not charged (automatic credit for dropped calls)."""


def _whole(name: str, value: int, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}: {value!r}")


def allowed_seconds(max_call_seconds: int, available_cents: int, rate: int) -> int:
    """Rule 4: ``min(max_call_seconds, floor(available / rate) * 60)``, fixed at connect."""
    _whole("max_call_seconds", max_call_seconds)
    _whole("available_cents", available_cents)
    _whole("rate", rate, 1)
    return min(max_call_seconds, (available_cents // rate) * 60)


def hold_cents(allowed_seconds: int, rate: int) -> int:
    """What the whole allowance can cost: every started minute of it, at ``rate``.

    Never more than the balance it was computed from: ``allowed_seconds`` grants whole minutes
    the balance pays for, or the facility cap, which is at most that.
    """
    _whole("allowed_seconds", allowed_seconds)
    _whole("rate", rate, 1)
    return -(-allowed_seconds // 60) * rate


def billable_minutes(
    connected_seconds: int, end_reason: str, free_under_s: int = FREE_UNDER_S
) -> int:
    """Started minutes, except that a dropped call's last partial minute is free, and a call
    under ``free_under_s`` seconds (the product's rule: ``FREE_UNDER_S``) is free altogether."""
    _whole("connected_seconds", connected_seconds)
    _whole("free_under_s", free_under_s)
    if connected_seconds < free_under_s:
        return 0
    if end_reason in UNCHARGED_LAST_MINUTE:
        return connected_seconds // 60
    return -(-connected_seconds // 60)


def charge_cents(
    connected_seconds: int,
    rate: int,
    end_reason: str,
    hold_cents: int,
    free_under_s: int = FREE_UNDER_S,
) -> int:
    """Rule 6: billable minutes times rate, never more than the hold placed at connect."""
    _whole("rate", rate, 1)
    _whole("hold_cents", hold_cents)
    return min(billable_minutes(connected_seconds, end_reason, free_under_s) * rate, hold_cents)
