"""Contact requests over HTTP (PROTOCOL v1.1): families find a resident and ask to become a
contact; a facility's admins see the requests of their facilities and answer them with
``PUT /api/v1/admin/contacts/{resident}/{family}`` (:mod:`visitation.admin_api`).

- ``GET /api/v1/facilities`` (family: every facility; admin: its own), by name;
- ``GET /api/v1/residents?facility_id=&q=`` (family): up to 20 residents of a facility whose
  name or id contains ``q`` (at least 2 characters, any case), by name;
- ``GET /api/v1/account/contacts`` / ``POST /api/v1/account/contacts {"resident_id"}``
  (family): its contacts with their status; a request makes a ``pending`` contact (201), an
  existing contact keeps its status (200). A family has at most :data:`MAX_PENDING` requests
  waiting at once, so one account cannot flood the admins' queue;
- ``GET /api/v1/admin/contacts?status=pending`` (admin): the requests of its facilities,
  oldest first (every status when ``status`` is left out).

A family learns nothing here that it could not see on a facility's visiting list: names and
ids of residents, never who else is their contact, never whether a contact is privileged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from core.directory import ContactRequest, Directory
from core.domain import Contact, ContactStatus, Facility, Id
from core.http_api import ApiError, guarded, known_admin, parse_body, parse_query
from core.tokens import Claims, Tokens

MAX_RESULTS: Final = 20
MAX_PENDING: Final = 10


class ResidentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    facility_id: Id
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]


class ContactAsk(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resident_id: Id


class RequestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ContactStatus | None = None


def _ref(record_id: str, names: dict[str, str]) -> dict[str, Any]:
    return {"id": record_id, "name": names.get(record_id)}


class ContactsApi:
    def __init__(self, directory: Directory, clock: Callable[[], float] = time.time) -> None:
        self._directory = directory
        self._clock = clock

    async def _family(self, claims: Claims) -> str:
        if not await self._directory.exists("family", claims.subject):
            raise ApiError(404, "not_found", f"no family account {claims.subject!r}")
        return claims.subject

    async def _facility_names(self) -> dict[str, str]:
        return {f.id: f.name for f in await self._directory.facilities()}

    async def facilities(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        found: list[Facility] = await self._directory.facilities()
        if claims.role == "admin":
            admin = await known_admin(self._directory, claims)
            found = [f for f in found if admin.covers(f.id)]
        listed = [{"id": f.id, "name": f.name} for f in found]
        return web.json_response({"facilities": listed})

    async def residents(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        query = parse_query(request, ResidentQuery)
        if not await self._directory.exists("facility", query.facility_id):
            raise ApiError(404, "not_found", f"no facility {query.facility_id!r}")
        needle = query.q.casefold()
        matches = [
            r
            for r in await self._directory.residents_in(query.facility_id)
            if needle in r.name.casefold() or needle in r.id.casefold()
        ]
        matches.sort(key=lambda r: (r.name.casefold(), r.id))
        listed = [
            {"id": r.id, "name": r.name, "facility_id": r.facility_id}
            for r in matches[:MAX_RESULTS]
        ]
        return web.json_response({"residents": listed})

    async def my_contacts(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = await self._family(claims)
        contacts = await self._directory.contacts_for(family_id)
        facilities = await self._facility_names()
        listed = []
        for contact in contacts:
            resident = await self._directory.resident(contact.resident_id)
            if resident is None:
                continue
            listed.append(
                {
                    "resident": {"id": resident.id, "name": resident.name},
                    "facility": _ref(resident.facility_id, facilities),
                    "status": contact.status,
                }
            )
        return web.json_response({"contacts": listed})

    async def ask(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = await self._family(claims)
        body = await parse_body(request, ContactAsk)
        resident = await self._directory.resident(body.resident_id)
        if resident is None:
            raise ApiError(404, "not_found", f"no resident {body.resident_id!r}")
        current = await self._directory.contact(resident.id, family_id)
        if current is None:
            pending = [
                c for c in await self._directory.contacts_for(family_id) if c.status == "pending"
            ]
            if len(pending) >= MAX_PENDING:
                raise ApiError(
                    409,
                    "too_many_pending",
                    f"{len(pending)} contact requests are waiting for the facilities' answer; "
                    "ask again once one of them is answered",
                )
        contact, created = await self._directory.request_contact(resident, family_id, self._clock())
        return web.json_response({"status": contact.status}, status=201 if created else 200)

    async def requests(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        query = parse_query(request, RequestQuery)
        facilities = await self._directory.facilities()
        names = {f.id: f.name for f in facilities}
        found: list[ContactRequest] = []
        for facility in facilities:
            if admin.covers(facility.id):
                found += await self._directory.contact_requests(facility.id)
        if query.status is not None:
            found = [r for r in found if r.contact.status == query.status]
        found.sort(key=lambda r: r.requested_at)
        return web.json_response({"contacts": [await self._row(r, names) for r in found]})

    async def _row(self, asked: ContactRequest, facilities: dict[str, str]) -> dict[str, Any]:
        contact: Contact = asked.contact
        resident = await self._directory.resident(contact.resident_id)
        family = await self._directory.family(contact.family_id)
        facility_id = resident.facility_id if resident is not None else None
        return {
            "resident": {"id": contact.resident_id, "name": resident.name if resident else None},
            "family": {"id": contact.family_id, "name": family.name if family else None},
            "facility": _ref(facility_id, facilities) if facility_id else None,
            "status": contact.status,
            "privileged": contact.privileged,
            "requested_at": round(asked.requested_at, 3),
        }


def add_contacts_routes(app: web.Application, *, directory: Directory, tokens: Tokens) -> None:
    api = ContactsApi(directory)
    family = {"family"}
    router = app.router
    router.add_get("/api/v1/facilities", guarded(tokens, {"family", "admin"}, api.facilities))
    router.add_get("/api/v1/residents", guarded(tokens, family, api.residents))
    router.add_get("/api/v1/account/contacts", guarded(tokens, family, api.my_contacts))
    router.add_post("/api/v1/account/contacts", guarded(tokens, family, api.ask))
    router.add_get("/api/v1/admin/contacts", guarded(tokens, {"admin"}, api.requests))


__all__ = ["MAX_PENDING", "MAX_RESULTS", "ContactsApi", "add_contacts_routes"]
