"""HTTP routes of transcripts (PROTOCOL v1.2 "Transcripts and watch words"):

- ``GET /api/v1/recordings/{call_id}/transcript`` (investigator, scoped like recordings;
  audited as ``view``): a call with no recording the caller may see (privileged, unknown, of
  another facility) answers ``status: none``, alike;
- ``GET /api/v1/alerts`` (investigator, admin: their facilities' alerts, newest first, each
  with ``read``), ``POST /api/v1/alerts/{alert_id}/read`` (an addition);
- watch words are a facility's (``PUT /api/v1/admin/facilities/{id}`` ``watch_words``).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core.directory import Directory
from core.domain import Staff
from core.http_api import ApiError, guarded, parse_query
from core.tokens import Claims, Tokens
from recorder.access import PLAYBACK
from recorder.audit import Actor
from recorder.service import RecordingService
from recorder.storage import CALL_ID
from transcripts.service import TranscriptService

PREFIX: Final = "/api/v1"


class AlertParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=100, ge=1, le=500)


def _actor(request: web.Request, claims: Claims) -> Actor:
    return Actor(
        claims.subject, claims.role, request.remote or "", request.headers.get("User-Agent", "")
    )


class TranscriptApi:
    def __init__(
        self, service: TranscriptService, recordings: RecordingService, directory: Directory
    ) -> None:
        self._service = service
        self._recordings = recordings
        self._directory = directory

    async def _staff(self, claims: Claims, roles: set[str]) -> Staff:
        staff = await self._directory.staff(claims.subject)
        if staff is None or staff.role not in roles:
            raise ApiError(403, "forbidden", f"{claims.subject!r} may not do this")
        return staff

    async def transcript(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        staff = await self._staff(claims, {"investigator"})
        call_id = request.match_info["call_id"]
        if not CALL_ID.match(call_id):
            raise ApiError(400, "invalid_request", "not a call id")
        entry = await self._recordings.catalog.get(call_id)
        if entry is not None and not staff.covers(entry.manifest.facility_id):
            await self._recordings.audit.append(
                _actor(request, claims),
                "view",
                call_ids=[call_id],
                facility_id=entry.manifest.facility_id,
                outcome="not_found",
                detail={"transcript": True},
            )
            entry = None
        body = await self._service.view(entry)
        body["call_id"] = call_id
        # ?playback=<id>: one ``view`` with the manifest, media and thumbnails of that playback
        # (the recorder's key, see recorder.http_api); without it, one entry per request.
        playback = request.query.get("playback")
        if playback is not None and not PLAYBACK.match(playback):
            raise ApiError(422, "invalid_request", "playback: 8 to 64 letters, digits, - or _")
        once = f"{claims.subject}|{call_id}|{playback}" if playback else None
        if entry is not None:
            await self._recordings.audit.append(
                _actor(request, claims),
                "view",
                call_ids=[call_id],
                facility_id=entry.manifest.facility_id,
                detail={
                    "transcript": True,
                    "transcript_status": body["status"],
                    "sha256": body["sha256"],
                },
                once=once,
            )
        return web.json_response(body, headers={"Cache-Control": "private, no-store"})

    async def _facilities(self, staff: Staff) -> list[str]:
        if "*" in staff.facility_ids:
            return await self._directory.all_facility_ids()
        return list(staff.facility_ids)

    async def alerts(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        staff = await self._staff(claims, {"investigator", "admin"})
        params = parse_query(request, AlertParams)
        found = await self._service.alerts.recent(
            await self._facilities(staff), staff.id, params.limit
        )
        return web.json_response({"alerts": found})

    async def read_alert(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        staff = await self._staff(claims, {"investigator", "admin"})
        alert_id = request.match_info["alert_id"]
        alert = await self._service.alerts.get(alert_id) if len(alert_id) <= 256 else None
        if alert is None or not staff.covers(alert.facility_id):
            raise ApiError(404, "not_found", "no such alert")
        await self._service.alerts.mark_read(staff.id, alert_id)
        return web.json_response({"alert_id": alert_id, "read": True})


def add_transcript_routes(
    app: web.Application,
    *,
    tokens: Tokens,
    directory: Directory,
    service: TranscriptService,
    recordings: RecordingService,
) -> None:
    api = TranscriptApi(service, recordings, directory)
    staff = {"investigator", "admin"}
    app.router.add_get(
        f"{PREFIX}/recordings/{{call_id}}/transcript",
        guarded(tokens, {"investigator"}, api.transcript),
    )
    app.router.add_get(f"{PREFIX}/alerts", guarded(tokens, staff, api.alerts))
    app.router.add_post(
        f"{PREFIX}/alerts/{{alert_id}}/read", guarded(tokens, staff, api.read_alert)
    )
