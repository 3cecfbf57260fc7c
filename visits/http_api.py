"""Scheduled visits over HTTP (PROTOCOL v1.2):

- ``GET /api/v1/visits/slots?resident_id=&from=&to=`` (family, approved contact):
  ``{"slots": [{"start", "start_local", "end", "available"}]}`` (plus ``end_local``, ``taken``);
- ``POST /api/v1/visits {"resident_id", "start"}`` (family): 201 ``{"visit_id", "status",
  "start", "end"}``; 409 ``slot_full``/``too_soon``/``too_far``/``weekly_limit``/``conflict``,
  422 ``not_approved``/``outside_hours``/``not_scheduled``;
- ``GET /api/v1/account/visits`` (family): its visits, soonest first (``?from=&to=``
  optional: by default from a day ago);
- ``GET /api/v1/account/visits.ics`` (family): its upcoming visits as an iCalendar feed;
- ``DELETE /api/v1/visits/{visit_id}`` (family): cancel; after the cutoff 409
  ``too_late_to_cancel``;
- ``GET /api/v1/admin/visits?facility_id=&from=&to=&status=`` (admin): the facility's visits
  (every facility of the admin's scope without ``facility_id``);
- ``PUT /api/v1/admin/visits/{visit_id} {"status": "booked"|"denied"|"canceled", "reason"?}``
  (admin): approve a pending visit, deny it, or cancel an open one, with a reason both sides see
  (the admin page asks for one; the API, as the protocol, takes it as optional).

A facility or visit outside an admin's scope answers 404 like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints

from core.directory import Directory
from core.domain import Id
from core.http_api import ApiError, guarded, known_admin, parse_body, parse_query
from core.tokens import Claims, Tokens
from visits.calendar import visits_calendar
from visits.record import Visit, VisitStatus
from visits.rules import DAY_S, Refusal
from visits.service import InvalidChange, NotFound, VisitService

Stamp = Annotated[int, Field(ge=0, le=10**11)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SlotQuery(_Model):
    resident_id: Id
    from_: Stamp | None = Field(default=None, alias="from")
    to: Stamp | None = None


class Range(_Model):
    from_: Stamp | None = Field(default=None, alias="from")
    to: Stamp | None = None


class AdminQuery(Range):
    facility_id: Id | None = None
    status: VisitStatus | None = None


class BookVisit(_Model):
    resident_id: Id
    start: StrictInt | StrictFloat


class StaffDecision(_Model):
    status: Literal["booked", "denied", "canceled"]
    reason: Reason | None = None


def _refused(exc: Refusal) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


class VisitsApi:
    def __init__(self, service: VisitService, directory: Directory) -> None:
        self._service = service
        self._directory = directory

    async def slots(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        query = parse_query(request, SlotQuery)
        try:
            found = await self._service.slots(
                claims.subject, query.resident_id, query.from_, query.to
            )
        except Refusal as exc:
            raise _refused(exc) from None
        except InvalidChange as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        return web.json_response({"slots": [view.as_json() for view in found]})

    async def book(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        body = await parse_body(request, BookVisit)
        try:
            visit = await self._service.book(claims.subject, body.resident_id, body.start)
        except Refusal as exc:
            raise _refused(exc) from None
        reply = {
            "visit_id": visit.visit_id,
            "status": visit.status.value,
            "start": visit.start,
            "end": visit.end,
        }
        return web.json_response({**visit.as_json(), **reply}, status=201)

    async def mine(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        query = parse_query(request, Range)
        now = self._service.now()
        start = query.from_ if query.from_ is not None else now - DAY_S
        end = query.to if query.to is not None else now + 400 * DAY_S
        found = await self._service.visits_of_family(claims.subject, start, end)
        return web.json_response({"visits": [v.as_json() for v in found]})

    async def calendar(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        now = self._service.now()
        found = await self._service.visits_of_family(claims.subject, now - DAY_S, now + 400 * DAY_S)
        found = [visit for visit in found if visit.end > now]  # upcoming, or under way
        family = await self._directory.family(claims.subject)
        name = f"Visits — {family.name}" if family else "Visits"
        return web.Response(
            body=visits_calendar(found, name),
            content_type="text/calendar",
            charset="utf-8",
            headers={"Content-Disposition": 'inline; filename="visits.ics"'},
        )

    async def cancel(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        try:
            visit = await self._service.cancel_by_family(
                claims.subject, request.match_info["visit_id"]
            )
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except Refusal as exc:
            raise _refused(exc) from None
        except InvalidChange as exc:
            raise ApiError(409, "too_late_to_cancel", str(exc)) from None
        return web.json_response(visit.as_json())

    async def facility_visits(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        query = parse_query(request, AdminQuery)
        if query.facility_id is not None:
            facility = await self._directory.facility(query.facility_id)
            if facility is None or not admin.covers(facility.id):
                raise ApiError(404, "not_found", f"no facility {query.facility_id!r} in yours")
            facility_ids = [facility.id]
        else:
            facility_ids = [f for f in await self._directory.all_facility_ids() if admin.covers(f)]
        now = self._service.now()
        start = query.from_ if query.from_ is not None else now - DAY_S
        end = query.to if query.to is not None else now + 30 * DAY_S
        found: list[Visit] = []
        for facility_id in facility_ids:
            found += await self._service.visits_of_facility(facility_id, start, end, query.status)
        found.sort(key=lambda v: (v.start, v.visit_id))
        return web.json_response({"visits": [v.as_json() for v in found]})

    async def decide(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        visit_id = request.match_info["visit_id"]
        body = await parse_body(request, StaffDecision)
        visit = await self._service.get(visit_id)
        if visit is None or not admin.covers(visit.facility_id):
            raise ApiError(404, "not_found", f"no visit {visit_id!r} in your facilities")
        to = VisitStatus(body.status)
        reason = body.reason or ""
        try:
            changed = await self._service.decide(visit, to, reason)
        except InvalidChange as exc:
            raise ApiError(409, "invalid_state", str(exc)) from None
        return web.json_response(changed.as_json())


def add_visit_routes(
    app: web.Application, *, service: VisitService, directory: Directory, tokens: Tokens
) -> None:
    api = VisitsApi(service, directory)
    family, admin = {"family"}, {"admin"}
    app.router.add_get("/api/v1/visits/slots", guarded(tokens, family, api.slots))
    app.router.add_post("/api/v1/visits", guarded(tokens, family, api.book))
    app.router.add_get("/api/v1/account/visits", guarded(tokens, family, api.mine))
    app.router.add_get("/api/v1/account/visits.ics", guarded(tokens, family, api.calendar))
    app.router.add_delete("/api/v1/visits/{visit_id}", guarded(tokens, family, api.cancel))
    app.router.add_get("/api/v1/admin/visits", guarded(tokens, admin, api.facility_visits))
    app.router.add_put("/api/v1/admin/visits/{visit_id}", guarded(tokens, admin, api.decide))
