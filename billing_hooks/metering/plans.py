"""Pricing plans at work (SPEC "Who pays"): what a facility's plan leaves a resident, whether a
call may ring under it, and what the family is told of it before answering.

The arithmetic is :mod:`core.tariff` (pure); the allowance is :class:`Allowances` (Redis). The
call service asks :meth:`PricingPlans.ring` before a call rings; the biller reserves and
consumes the allowance at connect and at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from billing_hooks.metering.allowance import Allowances
from core import tariff
from core.directory import Directory
from core.domain import Facility
from core.errors import ErrorCode, ProtocolError


def refusal_error(code: str) -> ProtocolError:
    """The ``call.place`` refusal :func:`core.tariff.refusal` named."""
    if code == ErrorCode.QUOTA_EXHAUSTED:
        return ProtocolError(
            ErrorCode.QUOTA_EXHAUSTED, "the resident's free minutes for today are used up"
        )
    return ProtocolError(
        ErrorCode.INSUFFICIENT_FUNDS, "the contact's balance does not cover one minute"
    )


@dataclass(frozen=True)
class FacilityPlan:
    plan: tariff.Plan
    timezone: str


@dataclass(frozen=True)
class RingQuote:
    """What the family is told before answering: of ``allowed_seconds`` (both parts), the
    agency pays ``free_seconds`` at most (``call.incoming``)."""

    allowed_seconds: int
    free_seconds: int

    def incoming(self) -> dict[str, Any]:
        return {"allowed_seconds": self.allowed_seconds, "free_seconds": self.free_seconds}


class PricingPlans:
    def __init__(
        self, redis: Redis, directory: Directory, clock: Callable[[], float] = time.time
    ) -> None:
        self.allowances = Allowances(redis, clock)
        self._directory = directory

    async def of(self, facility_id: str) -> FacilityPlan:
        """The facility's plan now (an unknown facility: the family pays, days in UTC)."""
        facility = await self._directory.facility(facility_id) if facility_id else None
        if facility is None:
            return FacilityPlan(tariff.FAMILY_PAYS, "UTC")
        return FacilityPlan(facility.pricing.plan(), facility.timezone)

    async def remaining(self, plan: tariff.Plan, timezone: str, resident_id: str) -> int | None:
        """The agency's seconds left to the resident now: None unlimited, 0 none."""
        if not plan.metered:
            return None if plan.allowance_s is None else 0
        return await self.allowances.remaining(plan, timezone, resident_id)

    async def ring(self, resident_id: str, facility: Facility, available_cents: int) -> RingQuote:
        """SPEC rule 1 under the plan: raises ``quota_exhausted`` (an agency plan's daily cap is
        used up) or ``insufficient_funds``; else what ``call.incoming`` says of the call."""
        plan = facility.pricing.plan()
        rate, available = facility.rate_cents_per_minute, max(0, available_cents)
        left = await self.remaining(plan, facility.timezone, resident_id)
        code = tariff.refusal(plan, available, rate, left)
        if code is not None:
            raise refusal_error(code)
        quote = tariff.quote(plan, facility.max_call_seconds, available, rate, left)
        return RingQuote(quote.allowed_seconds, quote.free_seconds)

    async def quote(
        self, resident_id: str, facility_id: str, max_call_seconds: int, rate: int, available: int
    ) -> RingQuote:
        """What ``call.incoming`` says of a call that rings already (sent again to a socket
        that connects while it rings): never refused here."""
        fp = await self.of(facility_id)
        left = await self.remaining(fp.plan, fp.timezone, resident_id)
        quote = tariff.quote(fp.plan, max_call_seconds, max(0, available), rate, left)
        return RingQuote(quote.allowed_seconds, quote.free_seconds)

    async def allowance_info(self, resident_id: str, facility: Facility) -> dict[str, Any]:
        """The tablet's view: what is left of the resident's free minutes, until when."""
        plan = facility.pricing.plan()
        left = await self.remaining(plan, facility.timezone, resident_id)
        clock = self.allowances.clock
        return {
            "payer": plan.payer,
            "period": plan.period,
            "free_seconds_remaining": left,  # None: unlimited (agency pays, no cap)
            "free_minutes_remaining": None if left is None else left // 60,
            "allowance_seconds": plan.allowance_s,
            "resets_at": tariff.period_ends_at(plan.period, facility.timezone, clock()),
        }
