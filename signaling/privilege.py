"""Privileged status, decided again where it matters (SPEC "Recording": privileged calls are
never recorded nor monitorable, decided before any media flows).

A call is privileged if its contact was when it was placed, but an admin may mark (or unmark)
the contact while the call rings, or between the answer and the parties' media. So
:meth:`PrivilegeCheck.recheck` decides again from the contact's current status:

- at accept, before the call is cataloged and placed on a worker (either way: an unmarked
  contact's call is recorded and monitorable like any other);
- at each party's offer and at connect, once the call's room is open: a call that turned
  privileged has its room made private on its worker (its recorder stopped and the file
  deleted, every monitor's connection closed, monitors refused from then on), its catalog entry
  dropped (``recording.forget``), its watchers told (``monitor.watch_ended``, reason
  ``privileged``) and its monitors shown the call as privileged (family null). A call that
  opened privileged stays so: what began privileged is never recorded later. A placed call
  whose worker cannot make it private raises :class:`CannotPrivatize`: its caller ends it
  (``connection_lost``), so it is never left recorded or watched.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Final, Protocol

from core.directory import Directory
from media.control import ControlError, SfuControl
from signaling.call_events import Emitter, call_summary, monitors_room
from signaling.call_state import CallRecord, CallStore
from signaling.monitoring import Monitoring

log = logging.getLogger(__name__)

#: Sent to each monitor whose watch ended because the call turned privileged (an addition to
#: PROTOCOL.md's monitor events): ``{"call_id", "reason": "privileged"}``.
WATCH_ENDED: Final = "monitor.watch_ended"


class CannotPrivatize(Exception):
    """The call turned privileged, and its worker could not make its room private."""


class Forgetting(Protocol):
    async def forget(self, record: CallRecord) -> None:
        """Drop the call's unfinished recording, as if it had never been recorded."""
        ...


class PrivilegeCheck:
    def __init__(
        self,
        directory: Directory,
        store: CallStore,
        control: SfuControl,
        monitoring: Monitoring,
        recording: Forgetting,
        emit: Emitter,
    ) -> None:
        self._directory = directory
        self._store = store
        self._control = control
        self._monitoring = monitoring
        self._recording = recording
        self._emit = emit

    async def recheck(self, record: CallRecord) -> CallRecord:
        """``record`` as it stands with the contact's current privileged status (raises
        :class:`CannotPrivatize`)."""
        contact = await self._directory.contact(record.resident_id, record.family_id)
        if contact is None or contact.privileged == record.privileged:
            return record  # a contact removed meanwhile: kept as decided
        placed = bool(record.worker_id)
        if placed and record.privileged:
            return record  # opened privileged: stays so
        changed = dataclasses.replace(record, privileged=contact.privileged)
        if placed and not await self._privatize(changed):
            raise CannotPrivatize(record.call_id)
        privileged = "1" if changed.privileged else "0"
        await self._store.annotate(record.call_id, {"privileged": privileged})
        log.info("call %s: its contact's privileged status is now %s", record.call_id, privileged)
        if placed:
            await self._end_watches(changed)
        return changed

    async def _privatize(self, record: CallRecord) -> bool:
        """The room on its worker first (no monitor, no recorder), then the catalog; the record
        is marked after both, so a failure leaves the next recheck to do it all again."""
        try:
            await self._control.privatize(record.worker_id, record.call_id)
        except ControlError as exc:
            log.error(
                "call %s turned privileged; its worker cannot make it private: %s",
                record.call_id,
                exc,
            )
            return False
        try:
            await self._recording.forget(record)
        except Exception:
            log.exception("call %s: dropping its recording's catalog entry failed", record.call_id)
        return True

    async def _end_watches(self, record: CallRecord) -> None:
        watchers = await self._monitoring.watcher_ids(record.call_id)
        await self._monitoring.clear_watchers(record.call_id)
        for sid in watchers:
            ended = {"call_id": record.call_id, "reason": "privileged"}
            await self._emit(WATCH_ENDED, ended, sid)
        summary = call_summary(record)
        await self._emit("monitor.call_updated", summary, monitors_room(record.facility_id))
