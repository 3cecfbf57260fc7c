"""Facility administration over HTTP (role ``admin``): facility settings (``GET`` with each
rate's regulatory cap, ``PUT``) and contact approval.

An admin token's subject must be a seeded staff member whose role is ``admin``; its
``facility_ids`` (or ``["*"]``) scope every request: a facility, or a resident, outside them
answers 404 exactly like one that does not exist, and nothing is changed.

A change is validated whole (the same rules as the seed, including the regulatory rate cap)
before anything is written. A new rate applies to calls placed after it; a call keeps the rate it
rang with.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from redis.asyncio import Redis

from billing_hooks import RateCapError, check_rate, load_caps
from core.directory import Directory
from core.domain import (
    CallingWindow,
    Contact,
    ContactStatus,
    Facility,
    FacilityType,
    Name,
    Pricing,
    Staff,
    VisitMode,
    WatchWords,
)
from core.http_api import ApiError, describe, guarded, known_admin, parse_body
from core.tokens import Claims, Tokens
from push.service import PUSH_NOTIFIER

PREFIX = "/api/v1/admin"


class VisitsChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: VisitMode | None = None
    slot_minutes: StrictInt | None = None
    min_notice_hours: StrictInt | None = None
    max_advance_days: StrictInt | None = None
    cancel_cutoff_hours: StrictInt | None = None
    max_per_week: StrictInt | None = None
    concurrent: StrictInt | None = None
    requires_approval: StrictBool | None = None


class FacilityChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name | None = None
    timezone: str | None = None
    type: FacilityType | None = None
    rate_cents_per_minute: StrictInt | None = None
    max_call_seconds: StrictInt | None = None
    calling_hours: Annotated[list[CallingWindow], Field(min_length=1)] | None = None
    retention_days: StrictInt | None = None
    # PROTOCOL v1.2 scheduled visits: only the fields given change (validated as a whole).
    visits: VisitsChange | None = None
    watch_words: WatchWords | None = None  # PROTOCOL v1.2 transcripts (the whole list)
    # PROTOCOL v1.2 pricing plans: the whole plan (fields left out take their defaults).
    pricing: Pricing | None = None


class ContactChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ContactStatus
    # Omitted: keep what the contact has (an attorney stays privileged when re-approved).
    privileged: StrictBool | None = None


class AdminApi:
    def __init__(self, redis: Redis, directory: Directory) -> None:
        self._redis = redis
        self._directory = directory

    async def _admin(self, claims: Claims) -> Staff:
        return await known_admin(self._directory, claims)

    async def facilities(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        """The admin's facilities with every setting, and the regulatory cap on each rate."""
        admin = await self._admin(claims)
        caps = load_caps()
        listed = [
            {**f.model_dump(), "rate_cap_cents_per_minute": caps.get(f.type)}
            for f in await self._directory.facilities()
            if admin.covers(f.id)
        ]
        return web.json_response({"facilities": listed})

    async def update_facility(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await self._admin(claims)
        facility_id = request.match_info["facility_id"]
        current = await self._directory.facility(facility_id) if admin.covers(facility_id) else None
        if current is None:
            raise ApiError(404, "not_found", f"no facility {facility_id!r} in your facilities")
        change = await parse_body(request, FacilityChange)
        merged: dict[str, Any] = {
            **current.model_dump(),
            **change.model_dump(exclude_none=True),
        }
        if change.visits is not None:
            merged["visits"] = {
                **current.visits.model_dump(),
                **change.visits.model_dump(exclude_none=True),
            }
        try:
            facility = Facility.model_validate(merged)
            check_rate(facility.id, facility.type, facility.rate_cents_per_minute, load_caps())
        except ValidationError as exc:
            raise ApiError(422, "invalid_request", describe(exc)) from None
        except RateCapError as exc:
            raise ApiError(422, "rate_over_cap", str(exc)) from None
        async with self._redis.pipeline(transaction=True) as pipe:
            Directory.queue_facility(pipe, facility)
            await pipe.execute()
        return web.json_response(facility.model_dump())

    async def set_contact(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await self._admin(claims)
        resident_id = request.match_info["resident_id"]
        family_id = request.match_info["family_id"]
        change = await parse_body(request, ContactChange)
        resident = await self._directory.resident(resident_id)
        if resident is None or not admin.covers(resident.facility_id):
            raise ApiError(404, "not_found", f"no resident {resident_id!r} in your facilities")
        if not await self._directory.exists("family", family_id):
            raise ApiError(404, "not_found", f"no family {family_id!r}")
        current = await self._directory.contact(resident_id, family_id)
        privileged = change.privileged
        if privileged is None:
            privileged = current.privileged if current is not None else False
        contact = Contact(
            resident_id=resident_id,
            family_id=family_id,
            status=change.status,
            privileged=privileged,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            Directory.queue_contact(pipe, contact)
            await pipe.execute()
        notifier = request.app.get(PUSH_NOTIFIER)
        decided = contact.status in ("approved", "denied")
        if (
            notifier is not None
            and decided
            and (current is None or current.status != contact.status)
        ):
            facility = await self._directory.facility(resident.facility_id)
            notifier.contact_updated(  # PROTOCOL v1.2 contact.updated (queued, never waited on)
                family_id,
                {"id": resident.id, "name": resident.name},
                {"id": resident.facility_id, "name": facility.name if facility else ""},
                contact.status,
                time.time(),
            )
        return web.json_response(contact.model_dump())


def add_admin_routes(
    app: web.Application, *, redis: Redis, directory: Directory, tokens: Tokens
) -> None:
    api = AdminApi(redis, directory)
    admin = {"admin"}
    app.router.add_get(f"{PREFIX}/facilities", guarded(tokens, admin, api.facilities))
    app.router.add_put(
        f"{PREFIX}/facilities/{{facility_id}}", guarded(tokens, admin, api.update_facility)
    )
    app.router.add_put(
        f"{PREFIX}/contacts/{{resident_id}}/{{family_id}}",
        guarded(tokens, admin, api.set_contact),
    )
