"""A visit as stored (one Redis hash) and as sent (PROTOCOL v1.2 ``visit`` objects)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from visits.slots import local_iso


class VisitStatus(StrEnum):
    PENDING = "pending"
    BOOKED = "booked"
    DENIED = "denied"
    CANCELED = "canceled"
    COMPLETED = "completed"
    MISSED = "missed"


#: A visit in these holds its station, its resident's and family's time, and its place in the
#: resident's week; a canceled or denied one gives them back.
HOLDING = frozenset(
    {VisitStatus.PENDING, VisitStatus.BOOKED, VisitStatus.COMPLETED, VisitStatus.MISSED}
)
#: Still to happen: staff or the family may change it.
OPEN = frozenset({VisitStatus.PENDING, VisitStatus.BOOKED})


@dataclass(frozen=True)
class Visit:
    visit_id: str
    facility_id: str
    resident_id: str
    family_id: str
    start: int
    end: int
    status: VisitStatus
    timezone: str
    facility_name: str = ""
    resident_name: str = ""
    family_name: str = ""
    reason: str = ""  # why staff denied or canceled it (both sides see it)
    canceled_by: str = ""  # "family", "staff" or "system"
    created_at: float = 0.0
    updated_at: float = 0.0
    call_id: str = ""  # the last call placed for it
    connected: bool = False  # a call for it connected
    cancel_cutoff_s: int = 0  # the family may cancel until start - this

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            out[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> Visit:
        data = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name not in data:
                continue
            value = data[field.name]
            if field.name in ("start", "end", "cancel_cutoff_s"):
                values[field.name] = int(value)
            elif field.name in ("created_at", "updated_at"):
                values[field.name] = float(value)
            elif field.name == "connected":
                values[field.name] = value == "1"
            elif field.name == "status":
                values[field.name] = VisitStatus(value)
            else:
                values[field.name] = value
        return cls(**values)

    def with_status(self, status: VisitStatus, **changes: Any) -> Visit:
        return replace(self, status=status, **changes)

    @property
    def cancel_until(self) -> int:
        return self.start - self.cancel_cutoff_s

    def as_json(self) -> dict[str, Any]:
        """The protocol's view, for the family, the tablet and staff alike."""
        tz = ZoneInfo(self.timezone)
        return {
            "visit_id": self.visit_id,
            "status": self.status.value,
            "start": self.start,
            "start_local": local_iso(self.start, tz),
            "end": self.end,
            "end_local": local_iso(self.end, tz),
            "facility": {"id": self.facility_id, "name": self.facility_name},
            "resident": {"id": self.resident_id, "name": self.resident_name},
            "family": {"id": self.family_id, "name": self.family_name},
            "resident_id": self.resident_id,
            "family_id": self.family_id,
            "contact_id": self.family_id,  # what the tablet's call.place names
            "reason": self.reason or None,
            "canceled_by": self.canceled_by or None,
            "cancel_until": self.cancel_until,
            "cancel_until_local": local_iso(self.cancel_until, tz),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "call_id": self.call_id or None,
        }
