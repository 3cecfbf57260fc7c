"""SPEC "Call rules" 1-2 at ``call.place``: may this resident call this contact now?

Each rule is checked in the order PROTOCOL.md's codes are documented; the first that fails
refuses the call with its code, and nothing is written. The tablet is never told which of the
family-side reasons made a contact ``unavailable`` (unverified, video calls off, the facility
blocked, the account closed, not reachable).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_hooks import Ledger
from billing_hooks.metering.plans import PricingPlans
from core.directory import Directory
from core.errors import ErrorCode, ProtocolError
from push.notifier import FamilyPush
from signaling.call_events import incoming_payload
from signaling.call_state import CallRecord, CallState, CallStore
from signaling.presence import Presence
from visits.calls import VisitCalls
from visits.record import Visit


@dataclass(frozen=True)
class Admitted:
    """A call the rules allow: its record (ringing, not yet stored), the visit it is for, and
    the family's ``call.incoming``."""

    record: CallRecord
    visit: Visit | None
    incoming: dict[str, Any]


class CallRules:
    def __init__(
        self,
        directory: Directory,
        ledger: Ledger,
        store: CallStore,
        presence: Presence,
        notifier: FamilyPush,
        *,
        ring_timeout_s: float,
        plans: PricingPlans | None = None,
        visits: VisitCalls | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._ledger = ledger
        self._store = store
        self._presence = presence
        self._notifier = notifier
        self._ring_timeout_s = ring_timeout_s
        self._plans = plans
        self._visits = visits
        self._clock = clock

    async def reachable(self, family_id: str) -> bool:
        """SPEC rule 1: an open socket on any node, or a push subscription."""
        return await self._presence.is_online(
            "family", family_id
        ) or await self._notifier.reachable(family_id)

    async def admit(self, resident_id: str, contact_id: str, visit_id: str | None) -> Admitted:
        """The call, if every rule allows it (raises :class:`ProtocolError` with the rule's code)."""
        resident = await self._directory.resident(resident_id)
        if resident is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"unknown resident {resident_id!r}")
        contact = await self._directory.contact(resident_id, contact_id)
        if contact is None or contact.status != "approved":
            raise ProtocolError(ErrorCode.NOT_APPROVED, "this contact is not approved for calls")
        facility = await self._directory.facility(resident.facility_id)
        family = await self._directory.family(contact_id)
        if facility is None or family is None:
            raise ProtocolError(ErrorCode.NOT_APPROVED, "this contact is not approved for calls")
        visit = None
        if self._visits is not None:  # not_scheduled: no due visit where one is needed
            visit = await self._visits.admit(facility, resident.id, family.id, visit_id)
        if not facility.is_open(datetime.fromtimestamp(self._clock(), UTC)):
            raise ProtocolError(ErrorCode.OUTSIDE_HOURS, "calls are not allowed at this hour")
        account = await self._ledger.balance(family.id)
        if (
            not family.verified
            or not family.allow_video_calls
            or family.blocks_facility(facility.id)
            or account.status == "closed"
            or not await self.reachable(family.id)
        ):
            raise ProtocolError(ErrorCode.UNAVAILABLE, "this contact is not available right now")
        if await self._store.active_call("resident", resident.id) or await self._store.active_call(
            "family", family.id
        ):
            raise ProtocolError(ErrorCode.BUSY, "a party is already in a call")
        plan: dict[str, Any] = {"free_seconds": 0}  # PROTOCOL v1.2: what the agency pays at most
        if self._plans is not None:  # insufficient_funds, or quota_exhausted (a daily cap)
            quote = await self._plans.ring(resident.id, facility, account.available_cents)
            plan = quote.incoming()  # allowed_seconds: both parts
        elif account.available_cents < facility.rate_cents_per_minute:
            raise ProtocolError(
                ErrorCode.INSUFFICIENT_FUNDS, "the contact's balance does not cover one minute"
            )
        record = CallRecord(
            call_id=uuid.uuid4().hex,
            state=CallState.RINGING,
            facility_id=facility.id,
            facility_name=facility.name,
            resident_id=resident.id,
            resident_name=resident.name,
            family_id=family.id,
            family_name=family.name,
            privileged=contact.privileged,
            rate_cents_per_minute=facility.rate_cents_per_minute,
            max_call_seconds=facility.max_call_seconds,
            created_at=self._clock(),
        )
        incoming = incoming_payload(record, account.available_cents, self._ring_timeout_s)
        return Admitted(record, visit, incoming | plan)
