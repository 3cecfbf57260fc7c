"""What investigators' searches list: summaries with names, and ``?q=`` searches — full text
over transcripts (through :class:`recorder.transcript_port.TranscriptPort`) and resident or
family names (substring, any case) — combined with the catalog filters and the caller's scope.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from core.directory import Directory
from core.domain import Staff
from recorder.catalog import Query, allowed_facilities
from recorder.service import RecordingService

NAME_SCAN: Final = 1000  # recordings (newest first) whose names a ``q`` search looks at


class Listing:
    def __init__(self, service: RecordingService, directory: Directory) -> None:
        self._service = service
        self._catalog = service.catalog
        self._directory = directory

    async def by_text(
        self, q: str, query: Query, staff: Staff
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Recordings matching the other filters whose transcript matches ``q`` (full text,
        see :mod:`recorder.transcript_port`) or whose resident's or family's name contains
        it (case-insensitive), newest first."""
        port = self._service.transcripts
        matches = await port.search(q, staff.facility_ids) if port is not None else {}
        allowed = allowed_facilities(staff.facility_ids)
        scan = dataclasses.replace(query, limit=NAME_SCAN)
        scanned = await self._catalog.search(scan, staff.facility_ids)
        by_id = {e.manifest.call_id: e for e in scanned}
        extra = [c for c in matches if c not in by_id]
        for entry in await self._catalog.entries(extra):
            by_id[entry.manifest.call_id] = entry
        candidates = [
            e
            for e in by_id.values()
            if query.matches(e, allowed)
            and (query.since is None or e.manifest.started_at >= query.since)
            and (query.until is None or e.manifest.started_at <= query.until)
        ]
        candidates.sort(key=lambda e: (e.manifest.started_at, e.manifest.call_id), reverse=True)
        summaries = await self.named([e.summary() for e in candidates])
        needle = q.strip().strip('"').casefold()
        hits = [
            s
            for s in summaries
            if s["call_id"] in matches
            or needle in (s.get("resident_name") or "").casefold()
            or needle in (s.get("family_name") or "").casefold()
        ]
        return hits[: query.limit], matches

    async def named(self, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Summaries with the resident's, family's and facility's names beside their ids (an
        addition: investigators read names; ids stay what the manifest signs)."""
        names: dict[tuple[str, str], str | None] = {}

        async def name(kind: str, record_id: str) -> str | None:
            if (kind, record_id) not in names:
                lookup = {
                    "resident": self._directory.resident,
                    "family": self._directory.family,
                    "facility": self._directory.facility,
                }[kind]
                record = await lookup(record_id)
                names[kind, record_id] = record.name if record is not None else None
            return names[kind, record_id]

        for summary in summaries:
            for kind in ("resident", "family", "facility"):
                summary[f"{kind}_name"] = await name(kind, summary[f"{kind}_id"])
        return summaries
