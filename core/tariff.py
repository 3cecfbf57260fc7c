"""Pure tariff arithmetic for SPEC "Call rules" 4 and 6 and "Who pays" (pricing plans).

Integer cents and seconds only; a rate of 0 (an agency-paid facility) costs nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

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
    _whole("rate", rate)
    if rate == 0:  # free: only the facility's cap limits the call
        return max_call_seconds
    return min(max_call_seconds, (available_cents // rate) * 60)


def hold_cents(allowed_seconds: int, rate: int) -> int:
    """What the whole allowance can cost: every started minute of it, at ``rate``.

    Never more than the balance it was computed from: ``allowed_seconds`` grants whole minutes
    the balance pays for, or the facility cap, which is at most that.
    """
    _whole("allowed_seconds", allowed_seconds)
    _whole("rate", rate)
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
    _whole("rate", rate)
    _whole("hold_cents", hold_cents)
    return min(billable_minutes(connected_seconds, end_reason, free_under_s) * rate, hold_cents)


# -- pricing plans (SPEC "Who pays", PROTOCOL v1.2 "Pricing plans") ----------------------------

Payer = Literal["family", "agency"]
Period = Literal["day", "week"]


@dataclass(frozen=True)
class Plan:
    """Who pays a facility's calls. ``family``: ``free_minutes`` per resident per ``free_period``
    are the agency's, the rest is the family's at the rate. ``agency``: every minute is free to
    families, and ``max_minutes_per_day`` (None: no cap) caps each resident's day."""

    payer: Payer = "family"
    free_minutes: int = 0
    free_period: Period = "day"
    max_minutes_per_day: int | None = None

    @property
    def period(self) -> Period:
        """The period the allowance is counted in (the cap is a daily one)."""
        return "day" if self.payer == "agency" else self.free_period

    @property
    def allowance_s(self) -> int | None:
        """The agency's seconds per resident per period; None: unlimited (agency, no cap)."""
        if self.payer == "agency":
            return None if self.max_minutes_per_day is None else self.max_minutes_per_day * 60
        return self.free_minutes * 60

    @property
    def metered(self) -> bool:
        """Whether an allowance has to be counted (reserved and consumed) for this plan."""
        return self.allowance_s is not None and (self.payer == "agency" or self.free_minutes > 0)


FAMILY_PAYS: Final = Plan()


@dataclass(frozen=True)
class Quote:
    """At connect: ``allowed_seconds`` (both parts) of which at most ``free_seconds`` are the
    agency's; ``hold_cents`` covers the paid part only."""

    allowed_seconds: int
    free_seconds: int
    hold_cents: int

    @property
    def paid_seconds(self) -> int:
        return self.allowed_seconds - self.free_seconds


@dataclass(frozen=True)
class Split:
    """At the end: what the agency paid (seconds) and what the family is charged (cents)."""

    agency_seconds: int
    charged_cents: int


def quote(
    plan: Plan,
    max_call_seconds: int,
    available_cents: int,
    rate: int,
    free_remaining_s: int | None,
) -> Quote:
    """Rule 4 with a plan: the agency's remaining seconds first, then what the balance pays.

    ``free_remaining_s``: what is left of the resident's allowance now (None: unlimited)."""
    _whole("max_call_seconds", max_call_seconds)
    _whole("available_cents", available_cents)
    if free_remaining_s is not None:
        _whole("free_remaining_s", free_remaining_s)
    if plan.payer == "agency":
        allowed = max_call_seconds
        if free_remaining_s is not None:
            allowed = min(allowed, free_remaining_s)
        return Quote(allowed, allowed, 0)
    free = min(max_call_seconds, free_remaining_s or 0)
    paid = allowed_seconds(max_call_seconds - free, available_cents, rate)
    return Quote(free + paid, free, hold_cents(paid, rate))


def refusal(
    plan: Plan, available_cents: int, rate: int, free_remaining_s: int | None
) -> str | None:
    """Rule 1 with a plan, before a call rings: None, or the ``call.place`` error code.

    ``quota_exhausted``: an agency-paid plan whose daily cap is used up. ``insufficient_funds``:
    neither what remains of the allowance nor the balance pays for one minute."""
    _whole("available_cents", available_cents)
    if plan.payer == "agency":
        if free_remaining_s is not None and free_remaining_s <= 0:
            return "quota_exhausted"
        return None
    _whole("rate", rate, 1)
    if (free_remaining_s or 0) >= 60 or available_cents >= rate:
        return None
    return "insufficient_funds"


def split(
    connected_seconds: int,
    end_reason: str,
    free_seconds: int,
    rate: int,
    hold_cents: int,
    free_under_s: int = FREE_UNDER_S,
) -> Split:
    """Rule 6 with a plan: the agency pays the first ``free_seconds`` (reserved at connect),
    the family the rest, rounded up to started minutes (the paid part only), with the
    dropped-call credit, never more than the hold. A call under ``free_under_s`` costs the
    family nothing; the agency's part is talk time all the same (the daily cap counts every
    second talked, so short calls cannot go past it)."""
    _whole("connected_seconds", connected_seconds)
    _whole("free_seconds", free_seconds)
    _whole("rate", rate)
    _whole("hold_cents", hold_cents)
    _whole("free_under_s", free_under_s)
    agency = min(connected_seconds, free_seconds)
    if connected_seconds < free_under_s:
        return Split(agency, 0)
    minutes = billable_minutes(connected_seconds - agency, end_reason, free_under_s=0)
    return Split(agency, min(minutes * rate, hold_cents))


def period_key(plan_period: Period, timezone: str, at: float) -> str:
    """The allowance period holding ``at`` in the facility's time zone: ``day:2026-12-07``,
    or ``week:2026-12-07`` (the week's local Monday: weeks run Monday to Sunday)."""
    local = datetime.fromtimestamp(at, ZoneInfo(timezone)).date()
    if plan_period == "week":
        return f"week:{(local - timedelta(days=local.weekday())).isoformat()}"
    return f"day:{local.isoformat()}"


def period_ends_at(plan_period: Period, timezone: str, at: float) -> float:
    """When the period holding ``at`` ends (the next local midnight, or the next local Monday
    00:00), in Unix seconds; the allowance is whole again from then on."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(at, zone).date()
    days = 7 - local.weekday() if plan_period == "week" else 1
    end = local + timedelta(days=days)
    return datetime(end.year, end.month, end.day, tzinfo=zone).timestamp()
