"""Connects the call lifecycle to the recorder.

- at accept, before the call is placed on a worker: catalog the recording (``complete: false``);
  a privileged call is never cataloged, and its worker room never records (decided before any
  media flows, from the call's ``privileged`` flag, which :mod:`signaling.privilege` decides
  again at accept, at offers and at connect);
- when a call turned privileged after it was cataloged (its room is made private and the file
  deleted by its worker): its catalog entry is dropped, as if it had never been recorded;
- when the call's room is closed: seal, hash, sign and catalog the file with the monitors'
  flags. The worker's report (``sfu:recording:{call_id}``) says it closed the file and what it
  could not record; without one (the worker died, was fenced or did not answer in time) the
  bytes written so far are sealed as a copy, ``complete: false``, so a late write can never
  reach the signed file;
- periodically: finalize orphans (a worker or node died mid-call; a call whose worker still
  holds it, or that ended moments ago, is being closed and is left alone) and purge expired
  recordings.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from core.config import Settings
from core.directory import Directory
from core.tasks import Periodic
from media.control import SfuControl
from recorder import CallInfo, RecordingService, WriterReport, open_storage
from recorder.transcript_port import TranscriptPort
from signaling.call_state import CallRecord, CallStore
from signaling.monitoring import Monitoring

log = logging.getLogger(__name__)

#: A call that ended this recently may still be closing on its worker: not an orphan yet.
CLOSING_GRACE_S = 60.0


def _info(record: CallRecord) -> CallInfo:
    return CallInfo(
        call_id=record.call_id,
        facility_id=record.facility_id,
        resident_id=record.resident_id,
        family_id=record.family_id,
        privileged=record.privileged,
        started_at=record.connected_at or record.accepted_at or record.created_at,
        connected_at=record.connected_at or None,
        ended_at=record.ended_at or None,
        end_reason=record.end_reason or None,
        warned_at=record.warned_at or None,
    )


class RecordingBridge:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        secret: bytes,
        directory: Directory,
        store: CallStore,
        control: SfuControl,
        monitoring: Monitoring,
        transcripts: TranscriptPort | None = None,
    ) -> None:
        storage = open_storage(settings.recordings_location)  # a directory, or s3://
        self.service = RecordingService(
            redis, storage, secret, directory=directory, transcripts=transcripts
        )
        self._directory = directory
        self._store = store
        self._control = control
        self.monitoring = monitoring
        self._sweeper = Periodic("recording-orphans", self._sweep, 60.0, delay_first=False)
        self._purger = Periodic("recording-retention", self._purge, 3600.0, delay_first=False)

    def start(self) -> None:
        self._sweeper.start()
        self._purger.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        await self._purger.stop()
        await asyncio.to_thread(self.service.storage.close)

    async def begin(self, record: CallRecord) -> None:
        """At accept, before the call's room opens (never for a privileged call)."""
        if not record.privileged:
            await self.service.begin(_info(record))

    async def forget(self, record: CallRecord) -> None:
        """The call turned privileged: its unfinished recording leaves no entry (the worker
        deleted the file; a shared directory's copy goes too)."""
        entry = await self.service.catalog.get(record.call_id)
        if entry is not None and entry.state == "recording":
            await self.service.catalog.discard(entry.manifest)
        await asyncio.to_thread(self.service.storage.discard_recording, record.call_id)

    async def finalize(self, record: CallRecord, closed_cleanly: bool) -> None:
        """Once the call's room is closed on its worker (cleanly or not)."""
        if record.privileged:
            return
        flags = await self.monitoring.flags(record.call_id)
        writer = await self._writer(record.call_id)
        await self.service.finalize(record.call_id, _info(record), flags, writer=writer)

    async def _writer(self, call_id: str) -> WriterReport | None:
        """What the worker reported when it closed the call's file (None: it never did)."""
        problems = await self._control.recording_report(call_id)
        return WriterReport(problems) if problems is not None else None

    async def _sweep(self) -> None:
        facility_ids = await self._directory.all_facility_ids()
        busy = {r.call_id for r in await self._store.live_calls(facility_ids)}
        now = time.time()
        for call_id in await self.service.catalog.open_call_ids():
            record = await self._store.get(call_id)
            recently_ended = record is not None and now - record.ended_at < CLOSING_GRACE_S
            if recently_ended or await self._control.held_by_worker(call_id):
                busy.add(call_id)
        await self.service.sweep_orphans(
            busy, flags_of=self.monitoring.flags, info_of=self._info, writer_of=self._writer
        )

    async def _info(self, call_id: str) -> CallInfo | None:
        record = await self._store.get(call_id)
        return _info(record) if record is not None else None

    async def _purge(self) -> None:
        purged = await self.service.purge_expired()
        if purged:
            log.info("retention: purged %d recording(s)", len(purged))
