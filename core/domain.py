"""Domain records: facilities, residents, families, contacts, staff (as seeded and stored)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from core import tariff

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
# A facility's watch word or phrase (PROTOCOL v1.2 transcripts): flags and alerts where said.
WatchWord = Annotated[str, Field(min_length=1, max_length=64, pattern=r"\S")]
WatchWords = Annotated[list[WatchWord], Field(max_length=200)]

FacilityType = Literal[
    "prison",
    "jail_large",
    "jail_medium",
    "jail_small",
    "jail_very_small",
    "jail_extremely_small",
]
ContactStatus = Literal["approved", "pending", "denied"]
#: The two parties of a call: the resident's tablet and the family.
Party = Literal["tablet", "family"]
StaffRole = Literal["monitor", "investigator", "admin"]

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_days(spec: str) -> frozenset[int]:
    """``mon-fri``, ``sat,sun``, ``mon`` or ``fri-mon`` (wrapping) to weekday numbers."""
    days: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in _DAYS or last not in _DAYS:
                raise ValueError(f"unknown day range {part!r} (use mon..sun)")
            i, j = _DAYS.index(first), _DAYS.index(last)
            span = (j - i) % 7
            days.update((i + k) % 7 for k in range(span + 1))
        elif part in _DAYS:
            days.add(_DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r} (use mon..sun)")
    return frozenset(days)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class CallingWindow(_Record):
    """Calls may ring on ``days`` between ``start`` and ``end`` (facility local time).

    An ``end`` at or before ``start`` runs past midnight into the next day.
    """

    days: str = "mon-sun"
    start: str
    end: str

    @field_validator("days")
    @classmethod
    def _check_days(cls, value: str) -> str:
        _parse_days(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a HH:MM time")
        return value

    def minutes_on(self, weekday: int) -> tuple[int, int] | None:
        """The local minutes this window opens on ``weekday`` (0 = Monday), from its start to
        its end (past 1440 when it runs into the next day); None if not on that day."""
        if weekday not in _parse_days(self.days):
            return None
        start, end = _minutes(self.start), _minutes(self.end)
        return start, end if end > start else end + 24 * 60

    def contains(self, local: datetime) -> bool:
        days = _parse_days(self.days)
        start, end = _minutes(self.start), _minutes(self.end)
        now = local.hour * 60 + local.minute
        if start < end:
            return local.weekday() in days and start <= now < end
        # Overnight window: the part after start today, or the part before end from yesterday.
        yesterday = (local - timedelta(days=1)).weekday()
        return (local.weekday() in days and now >= start) or (yesterday in days and now < end)


VisitMode = Literal["on_demand", "scheduled", "both"]


class VisitSettings(_Record):
    """Scheduled visits (PROTOCOL v1.2): slots of ``slot_minutes`` within calling hours, booked
    between ``min_notice_hours`` and ``max_advance_days`` ahead, ``concurrent`` per slot (the
    facility's video stations), ``max_per_week`` per resident (Monday to Sunday, local)."""

    mode: VisitMode = "on_demand"
    slot_minutes: StrictInt = Field(default=30, ge=5, le=240)
    min_notice_hours: StrictInt = Field(default=12, ge=0, le=24 * 90)
    max_advance_days: StrictInt = Field(default=14, ge=1, le=366)
    cancel_cutoff_hours: StrictInt = Field(default=24, ge=0, le=24 * 90)
    max_per_week: StrictInt = Field(default=3, ge=1, le=100)
    concurrent: StrictInt = Field(default=10, ge=1, le=1000)
    requires_approval: StrictBool = False

    @field_validator("slot_minutes")
    @classmethod
    def _check_slot(cls, value: int) -> int:
        if 60 % value and value % 60:
            raise ValueError("slot_minutes must divide 60 or be a multiple of 60")
        return value


class Pricing(_Record):
    """Who pays (PROTOCOL v1.2 "Pricing plans"): ``free_minutes`` per resident per
    ``free_period`` are the agency's, then the family pays at the rate; ``payer: agency`` makes
    every minute free to families, ``max_minutes_per_day`` (None: none) capping each resident."""

    payer: Literal["family", "agency"] = "family"
    free_minutes: StrictInt = Field(default=0, ge=0, le=10_080)
    free_period: Literal["day", "week"] = "day"
    max_minutes_per_day: StrictInt | None = Field(default=None, ge=1, le=1440)

    @model_validator(mode="after")
    def _cap_for_agency(self) -> Pricing:
        if self.max_minutes_per_day is not None and self.payer != "agency":
            raise ValueError("max_minutes_per_day applies only when payer is 'agency'")
        return self

    def plan(self) -> tariff.Plan:
        """The tariff's view of this setting."""
        return tariff.Plan(
            self.payer, self.free_minutes, self.free_period, self.max_minutes_per_day
        )


class Facility(_Record):
    id: Id
    name: Name
    timezone: str
    type: FacilityType = "prison"
    # 0 only where the agency pays every minute (see ``_rate_for_payer``).
    rate_cents_per_minute: StrictInt = Field(ge=0, le=10_000)
    max_call_seconds: StrictInt = Field(ge=60, le=4 * 3600)
    calling_hours: list[CallingWindow] = Field(min_length=1)
    retention_days: StrictInt = Field(default=180, ge=1, le=36_500)
    pricing: Pricing = Field(default_factory=Pricing)
    visits: VisitSettings = Field(default_factory=VisitSettings)
    watch_words: WatchWords = Field(default_factory=list)

    @model_validator(mode="after")
    def _rate_for_payer(self) -> Facility:
        if self.rate_cents_per_minute == 0 and self.pricing.payer != "agency":
            raise ValueError(
                "rate_cents_per_minute must be greater than 0 unless pricing.payer is 'agency'"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        return any(window.contains(local) for window in self.calling_hours)


class Resident(_Record):
    id: Id
    facility_id: Id
    name: Name


class Family(_Record):
    """A family member's profile. ``balance_cents`` is only the seed's opening deposit."""

    id: Id
    name: Name
    balance_cents: StrictInt = Field(default=0, ge=0, le=10_000_000)
    allow_video_calls: StrictBool = True
    verified: StrictBool = False
    blocks: list[Annotated[str, Field(pattern=r"^([A-Za-z0-9_.\-]{1,64}|all)$")]] = Field(
        default_factory=list, max_length=1000
    )

    def blocks_facility(self, facility_id: str) -> bool:
        return "all" in self.blocks or facility_id in self.blocks


class Contact(_Record):
    resident_id: Id
    family_id: Id
    status: ContactStatus
    privileged: StrictBool = False


class Staff(_Record):
    id: Id
    role: StaffRole
    facility_ids: list[Annotated[str, Field(pattern=r"^([A-Za-z0-9_.\-]{1,64}|\*)$")]] = Field(
        min_length=1
    )

    def covers(self, facility_id: str) -> bool:
        return "*" in self.facility_ids or facility_id in self.facility_ids


# A credential in a seed file, in clear: stored only as a hash (see visitation.seed).
SeedPassword = Annotated[str, Field(min_length=1, max_length=1024)]
SeedEmail = Annotated[str, Field(min_length=3, max_length=1000)]


class SeedFamily(Family):
    """A seed file's family: its profile, and optionally the e-mail and password it signs in
    with (PROTOCOL v1.2). Neither is part of the stored profile."""

    email: SeedEmail | None = None
    password: SeedPassword | None = Field(default=None, repr=False)

    def profile(self) -> Family:
        return Family.model_validate(self.model_dump(exclude={"email", "password"}))


class SeedStaff(Staff):
    """A seed file's staff member, optionally with the password it signs in with."""

    password: SeedPassword | None = Field(default=None, repr=False)

    def record(self) -> Staff:
        return Staff.model_validate(self.model_dump(exclude={"password"}))


class SeedFile(_Record):
    facilities: list[Facility] = Field(default_factory=list)
    residents: list[Resident] = Field(default_factory=list)
    families: list[SeedFamily] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    staff: list[SeedStaff] = Field(default_factory=list)
