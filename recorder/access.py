"""Who may see which recording, and the audit entry of every look (the investigators' routes
in :mod:`recorder.http_api` go through one :class:`Access`).

A recording outside the caller's facilities answers 404 exactly like one that does not exist,
and the look is still audited (``outcome: not_found``) under the call it was about. A catalog
entry whose signed manifest is another call's (:func:`recorder.manifest.binding_problem`) serves
nothing and is audited ``tampered``. A player's requests that share a ``?playback=`` id are one
``view`` entry per investigator, call and id (the audit's ``once`` key, for
:data:`recorder.playback.PLAYBACK_TTL_S`), and one more per kind of refusal.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from core.directory import Directory
from core.domain import Staff
from core.http_api import ApiError
from core.tokens import Claims
from recorder.audit import Action, Actor, AuditLog, Outcome
from recorder.catalog import Catalog, CatalogEntry
from recorder.manifest import binding_problem
from recorder.playback import PLAYBACK_TTL_S
from recorder.storage import CALL_ID

MAX_PARTY_TEXT: Final = 64  # of a refused ?party= (or ?playback=) value kept in the audit entry
PLAYBACK: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PLAYBACK_KEY: Final = web.RequestKey("recorder.playback", str)  # the audit's ``once`` key


def actor(request: web.Request, claims: Claims) -> Actor:
    return Actor(
        claims.subject, claims.role, request.remote or "", request.headers.get("User-Agent", "")
    )


class Access:
    """The investigator behind a token, the recordings they may see, and the audit of it."""

    def __init__(self, catalog: Catalog, audit: AuditLog, directory: Directory) -> None:
        self._catalog = catalog
        self._audit = audit
        self._directory = directory

    async def staff(self, claims: Claims) -> Staff:
        staff = await self._directory.staff(claims.subject)
        if staff is None or staff.role != "investigator":
            raise ApiError(403, "forbidden", f"{claims.subject!r} is not a known investigator")
        return staff

    async def visible(self, request: web.Request, claims: Claims, action: Action) -> CatalogEntry:
        """The recording named in the path if the caller may see it; else 404 (audited)."""
        staff = await self.staff(claims)
        call_id = request.match_info["call_id"]
        if not CALL_ID.match(call_id):
            raise ApiError(400, "invalid_request", "not a call id")
        entry = await self._catalog.get(call_id)
        if entry is not None and staff.covers(entry.manifest.facility_id):
            problem = binding_problem(entry.manifest, call_id)
            if problem is not None and action != "verify":  # verify answers ok: false
                await self.tampered(request, claims, action, call_id, entry, problem)
                raise ApiError(409, "manifest_mismatch", problem)
            return entry
        if entry is not None:  # someone looked where they may not: the call's history says so
            await self._audit.append(
                actor(request, claims),
                action,
                call_ids=[call_id],
                facility_id=entry.manifest.facility_id,
                outcome="not_found",
            )
        raise ApiError(404, "not_found", f"no recording of call {call_id!r}")

    async def tampered(
        self,
        request: web.Request,
        claims: Claims,
        action: Action,
        call_id: str,
        entry: CatalogEntry,
        problem: str,
    ) -> None:
        """Audit, under the call asked about, that its catalog entry is another call's."""
        detail = {"ok": False, "problems": [problem], "manifest_call_id": entry.manifest.call_id}
        await self._audit.append(
            actor(request, claims),
            action,
            call_ids=[call_id],
            facility_id=entry.manifest.facility_id,
            outcome="tampered",
            detail=detail,
        )

    async def log(
        self,
        request: web.Request,
        claims: Claims,
        action: Action,
        entry: CatalogEntry,
        outcome: Outcome = "ok",
        **detail: Any,
    ) -> None:
        m = entry.manifest
        status = int(detail.get("status", 200))
        if outcome == "ok" and status >= 400:
            outcome = "refused"  # a download that was answered with an error served nothing
        # A playback's requests are one entry, and one more per kind of refusal.
        once: str | None = request.get(PLAYBACK_KEY)
        if once is not None and outcome != "ok":
            once = f"{once}|{outcome}|{status}"
        await self._audit.append(
            actor(request, claims),
            action,
            call_ids=[m.call_id],
            facility_id=m.facility_id,
            outcome=outcome,
            detail=detail,
            once=once,
            once_ttl_s=PLAYBACK_TTL_S,
        )

    async def playback(
        self, request: web.Request, claims: Claims, entry: CatalogEntry, detail: dict[str, Any]
    ) -> None:
        """Note the request's ``?playback=`` id (in ``detail``, and as the audit's ``once``
        key for :meth:`log`); a malformed id is refused (422, audited)."""
        wanted = request.query.getall("playback", [])
        if not wanted:
            return
        detail["playback"] = wanted[0][:MAX_PARTY_TEXT]
        if len(wanted) > 1 or not PLAYBACK.match(wanted[0]):
            await self.log(request, claims, "view", entry, **detail, status=422)
            raise ApiError(422, "invalid_request", "playback: 8 to 64 letters, digits, - or _")
        request[PLAYBACK_KEY] = f"{claims.subject}|{entry.manifest.call_id}|{wanted[0]}"
