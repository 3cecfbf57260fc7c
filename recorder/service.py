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
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from core.directory import Directory
from recorder.audit import RETENTION, Actor, AuditLog
from recorder.catalog import Catalog, CatalogEntry
from recorder.manifest import Flag, Manifest, ManifestSigner, Track, Verification, object_key
from recorder.muxer import CODECS, TRACKS
from recorder.party_view import PartyViews
from recorder.playback import PlaybackMeter
from recorder.storage import Storage
from recorder.transcript_port import TranscriptPort

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS: Final = 180
DAY: Final = 86400.0
FlagSource = Callable[[str], Awaitable[Iterable[Mapping[str, Any] | Flag]]]
WRITER_LOST: Final = (
    "the SFU worker did not close the file (it stopped, was cut off or did not answer): "
    "the end of the call may be missing"
)


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
    connected_at: float | None = None  # None: the call never connected
    ended_at: float | None = None
    end_reason: str | None = None
    warned_at: float | None = None  # when the parties were told one minute remains


InfoSource = Callable[[str], Awaitable[CallInfo | None]]
WriterSource = Callable[[str], Awaitable["WriterReport | None"]]


@dataclass(frozen=True)
class WriterReport:
    """What the SFU worker reported when it closed a call's file: what it could not record."""

    problems: tuple[str, ...] = ()


CLOSED_CLEANLY: Final = WriterReport()

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
        transcripts: TranscriptPort | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``transcripts``: told of each recording sealed (in the background: never delaying
        the seal or the signature; failures are logged) and purged (awaited: what was derived
        from it goes), and asked for search and checks. None: the recorder alone."""
        self.storage = storage
        self.catalog = Catalog(redis)
        self.audit = AuditLog(redis, clock)
        self.playbacks = PlaybackMeter(redis)  # bytes served per playback (downloads)
        self.signer = ManifestSigner(secret)
        self.directory = directory or Directory(redis)
        self._clock = clock
        self.transcripts = transcripts
        self._hook_tasks: set[asyncio.Task[None]] = set()

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
        *,
        writer: WriterReport | None = CLOSED_CLEANLY,
    ) -> Manifest | None:
        """Seal the file (see :meth:`Storage.seal`), hash it, sign the manifest, catalog it.

        ``writer`` is what the SFU worker reported when it closed the file; ``None`` if it
        never did (it died, was fenced off or did not answer): the bytes written so far are
        then sealed as ``complete: false``. Returns the final manifest (the existing one if
        already finalized), or ``None`` if nothing is cataloged (never begun, e.g.
        privileged) or the call never connected and no media was written (the entry is then
        dropped). A call that connected keeps its entry even with no media at all, signed as
        such, with the reason."""
        entry = await self.catalog.get(call_id)
        if entry is None:
            return None
        if entry.state != "recording":
            return entry.manifest
        closed = writer is not None
        sealed = await asyncio.to_thread(self.storage.seal, call_id, writer_closed=closed)
        if sealed is not None and sealed.size == 0:
            await asyncio.to_thread(self.storage.delete, call_id)  # no empty files
            sealed = None
        if sealed is None and (call is None or call.connected_at is None):
            await self.catalog.discard(entry.manifest)
            log.info("call %s: no media was recorded; catalog entry dropped", call_id)
            return None
        problems = list(writer.problems) if writer is not None else [WRITER_LOST]
        if sealed is None:
            problems.insert(0, "nothing could be recorded")
        started_at = round(call.started_at if call else entry.manifest.started_at, 3)
        ended_at = call.ended_at if call and call.ended_at else None
        if ended_at is None:
            ended_at = sealed.modified_at if sealed is not None else self._clock()
        ended_at = round(ended_at, 3)
        manifest = entry.manifest.model_copy(
            update={
                "started_at": started_at,
                "ended_at": ended_at,
                "duration_s": round(max(0.0, ended_at - started_at), 3),
                "end_reason": (call.end_reason if call else None) or entry.manifest.end_reason,
                "warned_at": round(call.warned_at, 3) if call and call.warned_at else None,
                "size": sealed.size if sealed is not None else 0,
                "sha256": sealed.sha256 if sealed is not None else None,
                "object_key": object_key(call_id) if sealed is not None else None,
                "flags": [f if isinstance(f, Flag) else Flag.model_validate(f) for f in flags],
                "complete": not problems,
                "incomplete_reason": "; ".join(problems) or None,
            }
        )
        signed = self.signer.sign(manifest, self._clock())
        if await self.catalog.finalize(signed):
            if problems:
                log.warning("call %s: recording finalized incomplete: %s", call_id, problems)
            else:
                log.info("call %s: recording finalized (%d bytes)", call_id, signed.size)
            self._after_seal(signed)
            return signed
        current = await self.catalog.get(call_id)  # finalized concurrently (e.g. by a sweep)
        return current.manifest if current else None

    def _after_seal(self, manifest: Manifest) -> None:
        if self.transcripts is not None:
            task = asyncio.create_task(self._tell_sealed(self.transcripts, manifest))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    @staticmethod
    async def _tell_sealed(transcripts: TranscriptPort, manifest: Manifest) -> None:
        try:
            await transcripts.on_sealed(manifest)
        except Exception:
            log.exception("call %s: queueing its transcript failed", manifest.call_id)

    async def drain_hooks(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for the sealed-recording notices in flight, e.g. before stopping."""
        if self._hook_tasks:
            await asyncio.wait(set(self._hook_tasks), timeout=timeout_s)

    async def sweep_orphans(
        self,
        busy_call_ids: Collection[str],
        *,
        flags_of: FlagSource | None = None,
        info_of: InfoSource | None = None,
        writer_of: WriterSource | None = None,
        min_age_s: float = 60.0,
    ) -> list[Manifest]:
        """Finalize every recording still open whose call is not busy (live, or still being
        closed by its worker): its signaling node died, or its writer did. ``writer_of`` tells
        what the worker reported if it did close the file (its node never heard, e.g. the
        reply was lost): the file is whole and only those problems count; otherwise it is
        signed ``complete: false`` as written. Recordings begun less than ``min_age_s`` ago are
        left alone (their call may have started after the busy set was read). Then delete
        recordings in progress that have no open catalog entry (their call never connected)."""
        done: list[Manifest] = []
        horizon = self._clock() - min_age_s
        open_ids = await self.catalog.open_call_ids()
        for call_id in open_ids:
            if call_id in busy_call_ids:
                continue
            entry = await self.catalog.get(call_id)
            if entry is None or entry.manifest.started_at > horizon:
                continue
            flags = await flags_of(call_id) if flags_of else ()
            info = await info_of(call_id) if info_of else None
            writer = await writer_of(call_id) if writer_of else None
            manifest = await self.finalize(call_id, info, flags, writer=writer)
            if manifest is not None:
                how = "closed by its worker" if writer is not None else "incomplete"
                log.warning("call %s: orphaned recording finalized (%s)", call_id, how)
                done.append(manifest)
        await asyncio.to_thread(self._delete_stray_files, set(open_ids), horizon)
        return done

    def _delete_stray_files(self, open_ids: set[str], horizon: float) -> None:
        for call_id in self.storage.recordings_in_progress():
            if call_id in open_ids:
                continue
            try:
                stale = self.storage.modified_at(call_id) < horizon
            except FileNotFoundError:
                continue
            if stale and self.storage.discard_recording(call_id):
                log.info("call %s: deleted a recording in progress with no catalog entry", call_id)

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

    async def _purge(self, entry: CatalogEntry, now: float, days: int) -> bool:
        m = entry.manifest
        if entry.state != "final" or entry.legal_hold:
            return False
        if not await self.catalog.mark_purged(m, now):  # re-checks the hold atomically
            return False
        deleted = await asyncio.to_thread(self.storage.delete, m.call_id)
        # The per-party views are copies of the same evidence: they expire with it.
        views = await asyncio.to_thread(PartyViews(self.storage).discard, m.call_id)
        derived = 0  # what was made from it (its transcript...) expires with it too
        if self.transcripts is not None:
            try:
                await self.transcripts.on_purged(m)
                derived += 1
            except Exception:
                log.exception("call %s: purging its transcript failed", m.call_id)
        detail = {
            "retention_days": days,
            "sha256": m.sha256,
            "size": m.size,
            "deleted": deleted,
            "views_deleted": views,
        }
        if self.transcripts is not None:
            detail["derived_deleted"] = derived
        await self.audit.append(
            RETENTION, "purge", call_ids=[m.call_id], facility_id=m.facility_id, detail=detail
        )
        return True

    async def verify(self, call_id: str) -> Verification | None:
        """Recompute the file hash and manifest signature, and check the manifest is
        ``call_id``'s (not another call's stored under its id); ``None`` unless finalized."""
        entry = await self.catalog.get(call_id)
        if entry is None or entry.state != "final":
            return None
        return await asyncio.to_thread(self.signer.verify, entry.manifest, self.storage, call_id)
