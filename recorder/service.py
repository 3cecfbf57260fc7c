"""Recording lifecycle: begin before media flows, finalize (hash, sign, catalog), sweep the
orphans of crashed writers, purge after each facility's retention period unless on legal hold.

The signaling tier drives it (see ``recorder/__init__.py``); the SFU worker only writes the
file (:class:`recorder.muxer.CallRecording` at ``storage.open_write(call_id)``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from recorder.audit import RETENTION, Actor, AuditLog
from recorder.catalog import Catalog, Entry
from recorder.manifest import Flag, Manifest, ManifestSigner, Track, Verification, file_sha256
from recorder.muxer import CODECS, TRACKS
from recorder.party_view import PartyViews
from recorder.storage import Storage
from visitation.directory import Directory

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS: Final = 180
DAY: Final = 86400.0
FlagSource = Callable[[str], Awaitable[Iterable[Mapping[str, Any] | Flag]]]


class PrivilegedCallError(Exception):
    """A privileged (attorney) call is never recorded; nothing was written."""


class CallInfo(BaseModel):
    """What the signaling tier knows about a call (a subset of its call record)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    facility_id: str
    resident_id: str
    family_id: str
    privileged: bool = False
    started_at: float  # connected_at once known; the accept time when recording begins
    ended_at: float | None = None
    end_reason: str | None = None


PLANNED_TRACKS: Final = [
    Track(party=party, kind=kind, codec=CODECS[kind])  # type: ignore[arg-type]
    for party, kind in TRACKS
]


class RecordingService:
    def __init__(
        self,
        redis: Redis,
        storage: Storage,
        secret: bytes,
        *,
        directory: Directory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.catalog = Catalog(redis)
        self.audit = AuditLog(redis, clock)
        self.signer = ManifestSigner(secret)
        self.directory = directory or Directory(redis)
        self._clock = clock

    async def begin(self, call: CallInfo) -> Manifest:
        """Catalog the recording (``complete: false``) before any media flows. Refuses a
        privileged call (:class:`PrivilegedCallError`) without writing anything. Idempotent."""
        if call.privileged:
            raise PrivilegedCallError(f"call {call.call_id} is privileged: never recorded")
        manifest = Manifest(
            call_id=call.call_id,
            facility_id=call.facility_id,
            resident_id=call.resident_id,
            family_id=call.family_id,
            started_at=round(call.started_at, 3),
            tracks=PLANNED_TRACKS,
        )
        if await self.catalog.create(manifest):
            return manifest
        existing = await self.catalog.get(call.call_id)
        assert existing is not None
        return existing.manifest

    async def finalize(
        self,
        call_id: str,
        call: CallInfo | None = None,
        flags: Iterable[Mapping[str, Any] | Flag] = (),
        complete: bool = True,
    ) -> Manifest | None:
        """Hash the closed file, sign the manifest, catalog it. Call once the worker closed
        the file. Returns the final manifest (the existing one if already finalized), or
        ``None`` if nothing is cataloged (never begun, e.g. privileged) or no media was ever
        written (the entry is then dropped)."""
        entry = await self.catalog.get(call_id)
        if entry is None:
            return None
        if entry.state != "recording":
            return entry.manifest
        storage = self.storage
        try:
            modified_at = await asyncio.to_thread(storage.modified_at, call_id)
            digest, size = await asyncio.to_thread(file_sha256, storage, call_id)
        except FileNotFoundError:
            size = 0
        if size == 0:
            await self.catalog.discard(entry.manifest)
            log.info("call %s: no media was recorded; catalog entry dropped", call_id)
            return None
        started_at = round(call.started_at if call else entry.manifest.started_at, 3)
        ended_at = round(call.ended_at if call and call.ended_at else modified_at, 3)
        manifest = entry.manifest.model_copy(
            update={
                "started_at": started_at,
                "ended_at": ended_at,
                "duration_s": round(max(0.0, ended_at - started_at), 3),
                "end_reason": (call.end_reason if call else None) or entry.manifest.end_reason,
                "size": size,
                "sha256": digest,
                "flags": [f if isinstance(f, Flag) else Flag.model_validate(f) for f in flags],
                "complete": complete,
            }
        )
        signed = self.signer.sign(manifest, self._clock())
        if await self.catalog.finalize(signed):
            log.info(
                "call %s: recording finalized (%d bytes, complete=%s)", call_id, size, complete
            )
            return signed
        current = await self.catalog.get(call_id)  # finalized concurrently (e.g. by a sweep)
        return current.manifest if current else None

    async def sweep_orphans(
        self,
        live_call_ids: Collection[str],
        *,
        flags_of: FlagSource | None = None,
        min_age_s: float = 60.0,
    ) -> list[Manifest]:
        """Finalize, with ``complete: false`` and the file as written, every recording still
        open whose call is not live (its writer or signaling node died). ``live_call_ids``
        must be every live call in the cluster; recordings begun less than ``min_age_s`` ago
        are left alone (their call may have started after the live set was read)."""
        done: list[Manifest] = []
        horizon = self._clock() - min_age_s
        for call_id in await self.catalog.open_call_ids():
            if call_id in live_call_ids:
                continue
            entry = await self.catalog.get(call_id)
            if entry is None or entry.manifest.started_at > horizon:
                continue
            flags = await flags_of(call_id) if flags_of else ()
            manifest = await self.finalize(call_id, None, flags, complete=False)
            if manifest is not None:
                log.warning("call %s: orphaned recording finalized as incomplete", call_id)
                done.append(manifest)
        return done

    async def set_legal_hold(self, call_id: str, hold: bool, who: Actor) -> bool:
        """Put a recording on legal hold (never purged) or release it; audited."""
        entry = await self.catalog.get(call_id)
        changed = entry is not None and await self.catalog.set_hold(call_id, hold)
        await self.audit.append(
            who,
            "legal_hold",
            call_ids=[call_id],
            facility_id=entry.manifest.facility_id if entry else None,
            outcome="ok" if changed else "not_found",
            detail={"hold": hold},
        )
        return changed

    async def purge_expired(self, now: float | None = None, batch: int = 200) -> list[str]:
        """Delete the media of final recordings older than their facility's retention period
        (``retention_days``, default 180), except those on legal hold. Each purge leaves a
        tombstone in the catalog and an audit entry."""
        now = self._clock() if now is None else now
        purged: list[str] = []
        for facility_id in await self.catalog.facility_ids():
            facility = await self.directory.facility(facility_id)
            days = facility.retention_days if facility else DEFAULT_RETENTION_DAYS
            before = now - days * DAY
            seen: set[str] = set()
            while ids := [
                i
                for i in await self.catalog.started_before(facility_id, before, batch + len(seen))
                if i not in seen
            ]:
                seen.update(ids)
                for call_id in ids:
                    entry = await self.catalog.get(call_id)
                    if entry is not None and await self._purge(entry, now, days):
                        purged.append(call_id)
        return purged

    async def _purge(self, entry: Entry, now: float, days: int) -> bool:
        m = entry.manifest
        if entry.state != "final" or entry.legal_hold:
            return False
        if not await self.catalog.mark_purged(m, now):  # re-checks the hold atomically
            return False
        deleted = await asyncio.to_thread(self.storage.delete, m.call_id)
        # The per-party views are copies of the same evidence: they expire with it.
        views = await asyncio.to_thread(PartyViews(self.storage).discard, m.call_id)
        detail = {
            "retention_days": days,
            "sha256": m.sha256,
            "size": m.size,
            "deleted": deleted,
            "views_deleted": views,
        }
        await self.audit.append(
            RETENTION, "purge", call_ids=[m.call_id], facility_id=m.facility_id, detail=detail
        )
        return True

    async def verify(self, call_id: str) -> Verification | None:
        """Recompute the file hash and manifest signature; ``None`` unless finalized."""
        entry = await self.catalog.get(call_id)
        if entry is None or entry.state != "final":
            return None
        return await asyncio.to_thread(self.signer.verify, entry.manifest, self.storage)
