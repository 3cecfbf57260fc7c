"""Investigator HTTP API: search, view, download (HTTP Range), verify, audit, legal hold.

Every route needs an ``investigator`` token whose subject is a seeded investigator; a
recording outside the caller's facilities answers 404 exactly like one that does not exist.
Every list, view, download, verify and legal-hold change is an audit entry (also refused
look-ups of an existing recording, with ``outcome: not_found``): both through
:class:`recorder.access.Access`. Media is addressed by call id
only and streamed from :class:`recorder.storage.Storage`.

``GET .../media?party=tablet|family`` serves one party's view instead of the call file: that
party's video and audio remuxed into their own WebM (browsers play only a file's first video
and audio track), cached beside the original and made again when it changes; see
:mod:`recorder.party_view`. Same scoping and Range handling. The view is a convenience copy:
``verify`` and the manifest's hash always concern the original call file, which stays the
evidence.

A player makes many Range requests for one playback, so the audit counts what a person did,
not requests: a request with ``?playback=<id>`` (an id the page makes each time it opens a
recording; the manifest, both parties' media and the thumbnails share it) is one ``view``
entry per investigator, call and id, written by the first such request, for a short lifetime
(:data:`recorder.playback.PLAYBACK_TTL_S`). A media request without it is a ``download``: one
entry per request, i.e. per saved file; so is one with it but without ``Range`` (it takes the
whole file), and a playback whose bytes served pass the file's size (each time they pass it
again: :mod:`recorder.playback`). Refusals are always logged.

Every read and ``verify`` checks that the catalog's manifest is the call's own (its signed
``call_id`` and the media object it names, :func:`recorder.manifest.binding_problem`): one
stored under another call's id serves nothing (409 ``manifest_mismatch``; ``verify``: ``ok:
false``), "manifest belongs to another call", audited ``tampered``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from core.directory import Directory
from core.domain import Id
from core.http_api import ApiError, error_response, guarded, parse_body, parse_query
from core.tokens import Claims, Tokens
from recorder.access import MAX_PARTY_TEXT, PLAYBACK_KEY, Access, actor
from recorder.audit import Action, Outcome
from recorder.catalog import CatalogEntry, Query, allowed_facilities
from recorder.listing import Listing
from recorder.manifest import binding_problem
from recorder.party_view import PARTIES, Party, PartyViews, ViewBusyError, ViewError, view_key
from recorder.party_view import View as PartyView
from recorder.playback import copies_crossed
from recorder.ranges import ByteRange, RangeNotSatisfiable, parse_range
from recorder.service import RecordingService
from recorder.storage import CALL_ID, Storage
from recorder.thumbnails import Thumbnails

PREFIX: Final = "/api/v1"
CHUNK: Final = 256 * 1024
Sent = Callable[[int], Awaitable[None]]  # hears of the bytes of each chunk sent


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    resident_id: Id | None = None
    family_id: Id | None = None
    facility_id: Id | None = None
    from_: float | None = Field(default=None, alias="from", ge=0)
    to: float | None = Field(default=None, ge=0)
    flagged: bool | None = None
    #: Full text over transcripts (words, "quoted phrases"), and resident or family names.
    q: str | None = Field(default=None, min_length=1, max_length=256)
    limit: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("'from' must not be after 'to'")
        return self


class AuditParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    call_id: str | None = Field(default=None, pattern=CALL_ID.pattern)
    limit: int = Field(default=100, ge=1, le=1000)


class HoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: StrictBool


class RecordingApi:
    def __init__(self, service: RecordingService, directory: Directory, storage: Storage) -> None:
        self._service = service
        self._access = Access(service.catalog, service.audit, directory)
        self._storage = storage
        self._catalog = service.catalog
        self._audit = service.audit
        self._views = PartyViews(storage)
        self._meter = service.playbacks
        self._thumbnails = Thumbnails(storage)
        self._listing = Listing(service, directory)
        # One maker per view at a time (the lock goes once no request holds it).
        self._view_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # ------------------------------------------------------------------ routes

    async def search(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        staff = await self._access.staff(claims)
        params: ListParams = parse_query(request, ListParams)
        query = Query(
            resident_id=params.resident_id,
            family_id=params.family_id,
            facility_id=params.facility_id,
            since=params.from_,
            until=params.to,
            flagged=params.flagged,
            limit=params.limit,
        )
        matches: dict[str, list[dict[str, Any]]] = {}
        if params.q is None or not params.q.strip():
            found = await self._catalog.search(query, staff.facility_ids)
            summaries = await self._listing.named([e.summary() for e in found])
        else:
            summaries, matches = await self._listing.by_text(params.q, query, staff)
        ids = [s["call_id"] for s in summaries]
        filters = params.model_dump(by_alias=True, exclude_none=True)
        await self._audit.append(
            actor(request, claims),
            "list",
            call_ids=ids,
            detail={"query": filters, "call_ids": ids},
        )
        if params.q is not None:
            for summary in summaries:
                summary["matches"] = matches.get(summary["call_id"], [])
        return web.json_response({"recordings": summaries})

    async def view(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        entry = await self._access.visible(request, claims, "view")
        detail: dict[str, Any] = {}
        await self._access.playback(request, claims, entry, detail)
        await self._access.log(request, claims, "view", entry, **detail)
        [summary] = await self._listing.named([entry.summary()])
        return web.json_response(summary)

    async def media(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        """The call file, or with ``?party=tablet|family`` that party's view (see
        :mod:`recorder.party_view`); both with HTTP Range. Audited as one ``view`` per
        ``?playback=`` id, else as a ``download`` (see the module's docstring)."""
        action: Action = "view" if "playback" in request.query else "download"
        entry = await self._access.visible(request, claims, action)
        call_id = entry.manifest.call_id
        detail: dict[str, Any] = {}
        await self._access.playback(request, claims, entry, detail)
        wanted = request.query.getall("party", [])
        party: Party | None = None
        if wanted:
            detail["party"] = wanted[0][:MAX_PARTY_TEXT]
            if len(wanted) > 1 or wanted[0] not in PARTIES:
                await self._access.log(request, claims, action, entry, **detail, status=422)
                raise ApiError(422, "invalid_request", "party: must be 'tablet' or 'family'")
            party = wanted[0]
        if entry.state == "purged":
            await self._access.log(request, claims, action, entry, **detail, status=409)
            await asyncio.to_thread(self._views.discard, call_id)  # leave no copy behind
            raise ApiError(409, "purged", f"the recording of call {call_id!r} was purged")
        try:
            if party is None:
                key, etag = call_id, self._etag(entry)
                size = await asyncio.to_thread(self._storage.size, call_id)
            else:
                view = await self._view(request, claims, action, entry, party)
                key, etag, size = view.key, view.etag, view.size
        except FileNotFoundError:
            await self._access.log(request, claims, action, entry, **detail, status=404)
            raise ApiError(404, "not_found", f"no media for call {call_id!r}") from None
        header = request.headers.get("Range")
        if header is not None and request.headers.get("If-Range") not in (None, etag):
            header = None  # the client's copy is stale: send everything
        detail["range"] = header
        try:
            byte_range = parse_range(header, size)
        except RangeNotSatisfiable:
            await self._access.log(request, claims, action, entry, **detail, status=416)
            response = error_response(416, "range_not_satisfiable", f"the file has {size} bytes")
            response.headers["Content-Range"] = f"bytes */{size}"
            return response
        status = 200 if byte_range is None else 206
        if action == "view" and byte_range is None:
            action = "download"  # no Range: the whole file, whatever the playback
            request.pop(PLAYBACK_KEY, None)  # one entry per such request
        await self._access.log(request, claims, action, entry, **detail, status=status)
        sent: Sent | None = None
        if action == "view":  # a playback's Range request: its bytes are counted as sent

            async def sent(nbytes: int) -> None:
                await self._count(request, claims, entry, detail, nbytes, size, party)

        name = call_id if party is None else f"{call_id}-{party}"
        return await self._stream(request, key, name, size, byte_range, etag, sent)

    async def _count(
        self,
        request: web.Request,
        claims: Claims,
        entry: CatalogEntry,
        detail: dict[str, Any],
        nbytes: int,
        size: int,
        party: Party | None,
    ) -> None:
        """Count bytes a playback was sent; each whole copy of the file that its bytes pass is
        a ``download`` (one entry each: the playback's ``once`` key is for its ``view``)."""
        playback = str(detail["playback"])
        call_id = entry.manifest.call_id
        total = await self._meter.add(claims.subject, call_id, party or "call", playback, nbytes)
        request.pop(PLAYBACK_KEY, None)
        for copy in copies_crossed(total, nbytes, size):
            await self._access.log(
                request,
                claims,
                "download",
                entry,
                **detail,
                bytes_served=total,
                size=size,
                copy=copy,
                status=206,
            )

    @staticmethod
    def _etag(entry: CatalogEntry) -> str | None:
        return f'"{entry.manifest.sha256}"' if entry.state == "final" else None

    async def _view(
        self,
        request: web.Request,
        claims: Claims,
        action: Action,
        entry: CatalogEntry,
        party: Party,
    ) -> PartyView:
        """The recording's current ``party`` view, made (once at a time) if need be."""
        call_id = entry.manifest.call_id
        if entry.state != "final" or entry.manifest.sha256 is None:
            await self._access.log(request, claims, action, entry, party=party, status=409)
            raise ApiError(
                409,
                "invalid_state",
                f"the recording of call {call_id!r} is still being recorded: party views are "
                "made once it is signed (the whole file is available without 'party')",
            )
        sha256 = entry.manifest.sha256
        key = view_key(call_id, party)
        lock = self._view_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await asyncio.to_thread(self._views.get, call_id, party, sha256)
        except ViewBusyError as exc:
            await self._access.log(request, claims, action, entry, party=party, status=503)
            raise ApiError(503, "busy", str(exc)) from None
        except ViewError as exc:
            await self._access.log(request, claims, action, entry, party=party, status=409)
            raise ApiError(409, "unavailable", str(exc)) from None

    async def _stream(
        self,
        request: web.Request,
        key: str,
        name: str,
        size: int,
        byte_range: ByteRange | None,
        etag: str | None,
        sent: Sent | None = None,
    ) -> web.StreamResponse:
        """Stream the file (or its range); ``sent`` hears of each chunk once it is written."""
        start, length = (0, size) if byte_range is None else (byte_range.start, byte_range.length)
        response = web.StreamResponse(status=200 if byte_range is None else 206)
        response.content_type = "video/webm"
        response.content_length = length
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Content-Disposition"] = f'inline; filename="{name}.webm"'
        if etag:
            response.headers["ETag"] = etag
        if byte_range is not None:
            response.headers["Content-Range"] = byte_range.content_range
        await response.prepare(request)
        if request.method != "HEAD":
            end = start + length
            while start < end:
                want = min(CHUNK, end - start)
                chunk = await asyncio.to_thread(self._storage.read_range, key, start, want)
                if not chunk:
                    break  # the file shrank under us (purged mid-download): stop short
                await response.write(chunk)
                start += len(chunk)
                if sent is not None:
                    await sent(len(chunk))
        await response.write_eof()
        return response

    async def thumbnails(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        """``?party=tablet|family`` (default tablet): keyframe thumbnails of a signed
        recording (see :mod:`recorder.thumbnails`); audited as a ``view``."""
        entry = await self._access.visible(request, claims, "view")
        detail: dict[str, Any] = {"thumbnails": True}
        await self._access.playback(request, claims, entry, detail)
        party = request.query.get("party", "tablet")
        m = entry.manifest
        if party not in PARTIES:
            await self._access.log(request, claims, "view", entry, **detail, status=422)
            raise ApiError(422, "invalid_request", "party: must be 'tablet' or 'family'")
        if entry.state != "final" or m.sha256 is None:
            await self._access.log(request, claims, "view", entry, **detail, status=409)
            raise ApiError(409, "invalid_state", f"no thumbnails of call {m.call_id!r}: not signed")
        lock = self._view_locks.setdefault(f"thumbnails:{m.call_id}:{party}", asyncio.Lock())
        try:
            async with lock:
                made = await asyncio.to_thread(
                    self._thumbnails.get, m.call_id, party, m.sha256, m.duration_s or 0.0
                )
        except (FileNotFoundError, ViewError) as exc:
            await self._access.log(request, claims, "view", entry, **detail, status=409)
            raise ApiError(409, "unavailable", f"no thumbnails of call {m.call_id!r}") from exc
        await self._access.log(request, claims, "view", entry, **detail)
        body = {"call_id": m.call_id, "party": party, "thumbnails": [t.public() for t in made]}
        return web.json_response(body, headers={"Cache-Control": "private, no-store"})

    async def verify(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        entry = await self._access.visible(request, claims, "verify")
        call_id = request.match_info["call_id"]
        problem = binding_problem(entry.manifest, call_id)
        if problem is not None:  # whatever its state: no file is read for it
            found = self._service.signer.verify(entry.manifest, self._storage, call_id)
            await self._access.tampered(request, claims, "verify", call_id, entry, problem)
            return web.json_response(found.model_dump())
        if entry.state != "final":
            await self._access.log(request, claims, "verify", entry, "refused", state=entry.state)
            why = "was purged" if entry.state == "purged" else "is still being recorded"
            raise ApiError(409, "invalid_state", f"the recording of call {call_id!r} {why}")
        result = await self._service.verify(call_id)
        if result is None:  # purged or changed since the look-up
            raise ApiError(409, "invalid_state", f"the recording of call {call_id!r} changed")
        body = result.model_dump()
        port = self._service.transcripts
        if port is not None:  # an addition: the transcript is checked too (None: there is none)
            check = await port.check(entry)
            body["transcript_ok"] = check.ok
            body["transcript_status"] = check.status
            body["transcript_problems"] = check.problems
            body["ok"] = result.ok and check.ok is not False
            body["problems"] = [*result.problems, *check.problems]
        # The audit says what verify found: evidence found altered is never logged as "ok".
        outcome: Outcome = "ok" if body["ok"] else "tampered"
        await self._access.log(
            request, claims, "verify", entry, outcome, ok=body["ok"], problems=body["problems"]
        )
        return web.json_response(body)

    async def legal_hold(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        entry = await self._access.visible(request, claims, "legal_hold")
        body = await parse_body(request, HoldBody)
        call_id = entry.manifest.call_id
        if entry.state == "purged":
            raise ApiError(409, "purged", f"the recording of call {call_id!r} was purged")
        await self._service.set_legal_hold(call_id, body.hold, actor(request, claims))
        updated = await self._catalog.get(call_id)
        assert updated is not None
        [summary] = await self._listing.named([updated.summary()])
        return web.json_response(summary)

    async def audit(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        staff = await self._access.staff(claims)
        params: AuditParams = parse_query(request, AuditParams)
        if params.call_id is None:
            allowed = allowed_facilities(staff.facility_ids)
            entries = await self._audit.recent(params.limit, allowed)
            return web.json_response({"entries": entries})
        entry = await self._catalog.get(params.call_id)
        if entry is None or not staff.covers(entry.manifest.facility_id):
            raise ApiError(404, "not_found", f"no recording of call {params.call_id!r}")
        entries = await self._audit.for_call(params.call_id, params.limit)
        return web.json_response({"call_id": params.call_id, "entries": entries})


def add_recording_routes(
    app: web.Application,
    *,
    tokens: Tokens,
    directory: Directory,
    service: RecordingService,
    storage: Storage | None = None,
) -> None:
    """Mount the investigator routes (``storage`` defaults to the service's)."""
    api = RecordingApi(service, directory, storage or service.storage)
    role = {"investigator"}
    base = f"{PREFIX}/recordings"
    app.router.add_get(base, guarded(tokens, role, api.search))
    app.router.add_get(f"{base}/{{call_id}}", guarded(tokens, role, api.view))
    app.router.add_get(f"{base}/{{call_id}}/media", guarded(tokens, role, api.media))
    app.router.add_get(f"{base}/{{call_id}}/thumbnails", guarded(tokens, role, api.thumbnails))
    app.router.add_post(f"{base}/{{call_id}}/verify", guarded(tokens, role, api.verify))
    app.router.add_put(f"{base}/{{call_id}}/legal-hold", guarded(tokens, role, api.legal_hold))
    app.router.add_get(f"{PREFIX}/audit", guarded(tokens, role, api.audit))
