"""The facility administrators' live board (``GET /api/v1/admin/board``): per facility of the
admin's scope, the calls live now by state, and today's numbers (local day): connected calls
settled, their minutes and revenue, the minutes the agency paid beside it (pricing plans:
``agency_seconds`` and ``agency_minutes``, :mod:`billing_hooks.metering.allowance`), and ``call.place``
refusals by reason (:mod:`core.facility_stats`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from core.directory import Directory
from core.http_api import guarded, known_admin
from core.tokens import Claims, Tokens
from signaling.call_state import LIVE
from signaling.calls import CallService


class AdminBoard:
    def __init__(self, calls: CallService, directory: Directory) -> None:
        self._calls = calls
        self._directory = directory

    async def board(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        facilities = [f for f in await self._directory.facilities() if admin.covers(f.id)]
        live = Counter(
            (r.facility_id, r.state.value)
            for r in await self._calls.live_calls([f.id for f in facilities])
        )
        listed: list[dict[str, Any]] = []
        for facility in facilities:  # by name
            today = await self._calls.stats.today(facility.id, facility.timezone)
            numbers = today.public()
            agency = 0
            if self._calls.plans is not None:
                agency = await self._calls.plans.allowances.agency_seconds(facility.id, today.day)
            numbers |= {"agency_seconds": agency, "agency_minutes": round(agency / 60, 1)}
            now = {state.value: live[facility.id, state.value] for state in LIVE}
            listed.append(
                {
                    "id": facility.id,
                    "name": facility.name,
                    "live": now,
                    "live_calls": sum(now.values()),
                    "today": numbers,
                    "pricing": facility.pricing.model_dump(),
                }
            )
        return web.json_response({"facilities": listed})


def add_board_routes(
    app: web.Application, *, calls: CallService, directory: Directory, tokens: Tokens
) -> None:
    board = AdminBoard(calls, directory)
    app.router.add_get("/api/v1/admin/board", guarded(tokens, {"admin"}, board.board))
