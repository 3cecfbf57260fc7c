"""What the call lifecycle tells clients: the emitter, the rooms, and the payloads it builds."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from billing_hooks import Settlement
from core import tariff
from signaling.call_state import CallRecord, CallState

log = logging.getLogger(__name__)


class Emitter(Protocol):
    async def __call__(self, event: str, data: dict[str, Any], room: str) -> None: ...


CallHook = Callable[[CallRecord], Awaitable[None]]
Settler = Callable[[CallRecord], Awaitable[Settlement]]


def tablet_room(resident_id: str) -> str:
    return f"tablet:{resident_id}"


def family_room(family_id: str) -> str:
    return f"family:{family_id}"


def monitors_room(facility_id: str) -> str:
    return f"monitors:{facility_id}"


def incoming_payload(
    record: CallRecord, balance_cents: int, ring_timeout_s: float
) -> dict[str, Any]:
    """``call.incoming`` as the family gets it (on every socket, when the call starts ringing
    and again on a socket that connects while it rings)."""
    return {
        "call_id": record.call_id,
        "resident": {"id": record.resident_id, "name": record.resident_name},
        "facility": {"id": record.facility_id, "name": record.facility_name},
        "rate_cents_per_minute": record.rate_cents_per_minute,
        "max_call_seconds": record.max_call_seconds,
        "balance_cents": balance_cents,
        "allowed_seconds": tariff.allowed_seconds(
            record.max_call_seconds, balance_cents, record.rate_cents_per_minute
        ),
        "ring_timeout_s": ring_timeout_s,
    }


def parties(record: CallRecord) -> tuple[dict[str, str], dict[str, str]]:
    """The resident and the facility as pushes name them: ``{"id", "name"}`` each."""
    return (
        {"id": record.resident_id, "name": record.resident_name},
        {"id": record.facility_id, "name": record.facility_name},
    )


def ended_payload(record: CallRecord) -> dict[str, Any]:
    """``call.ended`` as the tablet gets it (the family's adds its charge)."""
    payload: dict[str, Any] = {
        "call_id": record.call_id,
        "reason": record.end_reason,
        "duration_s": record.duration_s,
    }
    if record.ended_by:
        payload["by"] = record.ended_by
    return payload


def call_summary(record: CallRecord, watchers: int = 0) -> dict[str, Any]:
    """PROTOCOL.md CallSummary, for monitors: of a privileged call they learn that the
    resident is in one, never with whom (PROTOCOL.md v1.1)."""
    if record.privileged:
        family: dict[str, str | None] = {"id": None, "name": None}
    else:
        family = {"id": record.family_id, "name": record.family_name}
    return {
        "call_id": record.call_id,
        "facility_id": record.facility_id,
        "facility_name": record.facility_name,  # an addition: staff read names
        "resident": {"id": record.resident_id, "name": record.resident_name},
        "family": family,
        "state": record.state.value,
        "connected_at": record.connected_at or None,
        "allowed_seconds": record.allowed_seconds or None,
        "ends_at": record.ends_at or None,
        "privileged": record.privileged,
        "recording": not record.privileged and record.state == CallState.CONNECTED,
        "watchers": watchers,
    }
