"""Connects the call lifecycle to the recorder.

- at accept, before the call is placed on a worker: catalog the recording (``complete: false``);
  a privileged call is never cataloged, and its worker room never records (decided before any
  media flows, from the call's ``privileged`` flag);
- when the worker has closed the call's room (and so the file): hash, sign and catalog it, with
  the monitors' flags; ``complete: false`` if the worker could not close it cleanly;
- periodically: finalize orphans (a worker or node died mid-call) and purge expired recordings.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from recorder import CallInfo, LocalStorage, RecordingService
from signaling.call_state import CallRecord
from signaling.calls import CallService
from signaling.media_bridge import MediaBridge
from signaling.monitoring import Monitoring
from visitation.config import Settings
from visitation.directory import Directory
from visitation.tasks import Periodic

log = logging.getLogger(__name__)


def _info(record: CallRecord) -> CallInfo:
    return CallInfo(
        call_id=record.call_id,
        facility_id=record.facility_id,
        resident_id=record.resident_id,
        family_id=record.family_id,
        privileged=record.privileged,
        started_at=record.connected_at or record.accepted_at or record.created_at,
        ended_at=record.ended_at or None,
        end_reason=record.end_reason or None,
    )


class RecordingBridge:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        secret: bytes,
        directory: Directory,
        calls: CallService,
        media: MediaBridge,
        monitoring: Monitoring,
    ) -> None:
        storage = LocalStorage(settings.recordings_path)
        self.service = RecordingService(redis, storage, secret, directory=directory)
        self.calls = calls
        self.monitoring = monitoring
        # First of the accept hooks: cataloged before the media bridge places the call.
        calls.accept_hooks.insert(0, self._begin)
        media.closed_hooks.append(self._finalize)
        self._sweeper = Periodic("recording-orphans", self._sweep, 60.0, delay_first=False)
        self._purger = Periodic("recording-retention", self._purge, 3600.0, delay_first=False)

    def start(self) -> None:
        self._sweeper.start()
        self._purger.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        await self._purger.stop()

    async def _begin(self, record: CallRecord) -> None:
        if not record.privileged:
            await self.service.begin(_info(record))

    async def _finalize(self, record: CallRecord, closed_cleanly: bool) -> None:
        if record.privileged:
            return
        flags = await self.monitoring.flags(record.call_id)
        await self.service.finalize(record.call_id, _info(record), flags, complete=closed_cleanly)

    async def _sweep(self) -> None:
        facility_ids = await self.calls.directory.all_facility_ids()
        live = {r.call_id for r in await self.calls.live_calls(facility_ids)}
        await self.service.sweep_orphans(live, flags_of=self.monitoring.flags)

    async def _purge(self) -> None:
        purged = await self.service.purge_expired()
        if purged:
            log.info("retention: purged %d recording(s)", len(purged))
