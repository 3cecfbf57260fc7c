"""``call.quality``: how good each party's connection is, for the people in and watching a call.

An SFU worker measures each party's round trip, jitter and loss from RTCP and grades them
(:mod:`media.quality`); it reports a ``quality`` event when a party's level changes and every
few seconds otherwise. The node that handles the event (once across nodes) relays it, while the
call is connected, as ``call.quality``::

    {"call_id": "...",
     "tablet": {"level": "good", "rtt_ms": 42.0, "jitter_ms": 3.1, "loss_pct": 0.0},
     "family": {"level": "poor", "rtt_ms": 610.5, "jitter_ms": 48.0, "loss_pct": 9.2}}

``level`` is ``good``, ``fair``, ``poor`` or ``unknown`` (nothing measured yet); a measure not
known yet is ``null``. It goes to the family (its own call) and to the monitors of the call's
facility (not for a privileged call, which they cannot watch); the tablet's page shows no badge.
Nothing in it names or counts monitors.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from media.control import PARTIES, WorkerEvent
from signaling.call_state import CallRecord, CallState
from signaling.calls import CallService, family_room, monitors_room

log = logging.getLogger(__name__)

EVENT: Final = "call.quality"
LEVELS: Final = frozenset({"good", "fair", "poor", "unknown"})
MEASURES: Final = ("rtt_ms", "jitter_ms", "loss_pct")


def _party(raw: Any) -> dict[str, Any]:
    """One party's quality, as sent to clients (unknown unless the worker said otherwise)."""
    entry: dict[str, Any] = {"level": "unknown", **dict.fromkeys(MEASURES)}
    if not isinstance(raw, dict):
        return entry
    if raw.get("level") in LEVELS:
        entry["level"] = raw["level"]
    for name in MEASURES:
        value = raw.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            entry[name] = round(float(value), 1)
    return entry


def payload(event: WorkerEvent) -> dict[str, Any] | None:
    """``call.quality``'s payload from a worker's ``quality`` event (None if unreadable)."""
    try:
        reported = json.loads(event.quality or "")
    except ValueError:
        return None
    if not isinstance(reported, dict):
        return None
    return {"call_id": event.call_id, **{p: _party(reported.get(p)) for p in PARTIES}}


async def relay(calls: CallService, record: CallRecord, event: WorkerEvent) -> None:
    """Send ``call.quality`` to the family and the facility's monitors (connected calls)."""
    if record.state != CallState.CONNECTED:
        return
    data = payload(event)
    if data is None:
        log.warning("call %s: unreadable quality report from %s", record.call_id, event.worker_id)
        return
    await calls.emit(EVENT, data, family_room(record.family_id))
    if not record.privileged:
        await calls.emit(EVENT, data, monitors_room(record.facility_id))
