"""The signaling tier's side of the media plane, over the one Redis control channel (opening
and closing a call's room is :mod:`signaling.media_plane`, the call service's media port):

- relays ``rtc.offer`` and ``monitor.watch`` to that worker and returns its answer;
- turns worker events into call transitions: ``connected`` starts the call (and billing),
  ``media_lost`` ends it with ``connection_lost``; each event is handled once across nodes;
- ends every call of a worker whose heartbeat stopped, with ``connection_lost`` (not while
  Redis itself was just unreachable: a worker's heartbeat may have failed with ours);
- relays a worker's ``quality`` reports as ``call.quality`` (:mod:`signaling.call_quality`);
- decides again whether a call is privileged (:mod:`signaling.privilege`) at accept, at each
  party's offer and at connect, from its contact's current status.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import ErrorCode, ProtocolError
from core.redis_text import text
from core.tasks import Periodic
from media.control import ALIVE_TTL_MS, ControlError, Party, SfuControl, WorkerEvent
from media.redis_keys import WORKER_CALLS
from signaling import call_quality
from signaling.call_state import CallRecord, CallState
from signaling.calls import IN_CALL, CallService
from signaling.monitoring import Monitoring
from signaling.payloads import CallRef, RtcOffer
from signaling.privilege import CannotPrivatize, PrivilegeCheck
from signaling.session import Session

log = logging.getLogger(__name__)

OUTAGE_S = 1.0  # a dead-worker query that took longer than this met a Redis outage

_CONTROL_CODES = {
    "invalid_sdp": ErrorCode.INVALID_SDP,
    "privileged": ErrorCode.PRIVILEGED,
    "invalid_state": ErrorCode.INVALID_STATE,
    "not_found": ErrorCode.INVALID_STATE,
    "invalid_request": ErrorCode.INVALID_REQUEST,
    # Too slow to answer in time, or no worker at all: refused at the door, try again later.
    "timeout": ErrorCode.CAPACITY,
    "no_workers": ErrorCode.CAPACITY,
    "capacity": ErrorCode.CAPACITY,
}


def _protocol_error(exc: ControlError) -> ProtocolError:
    code = _CONTROL_CODES.get(exc.code)
    if code is ErrorCode.CAPACITY:
        return ProtocolError(code, "the media server is busy; try again shortly")
    if code is None:
        log.warning("SFU control failed: %s %s", exc.code, exc)
        return ProtocolError(ErrorCode.INTERNAL, "the media server is unavailable; try again")
    return ProtocolError(code, exc.message)


class MediaBridge:
    def __init__(
        self,
        redis: Redis,
        control: SfuControl,
        calls: CallService,
        monitoring: Monitoring,
        privilege: PrivilegeCheck,
        node_name: str,
    ) -> None:
        """``node_name`` names this node's consumer of worker events: it must survive a
        restart (so the node takes back the events it had not finished) and differ between
        live nodes."""
        self._redis = redis
        self.calls = calls
        self.monitoring = monitoring
        self.control = control
        self.privilege = privilege
        self._consumer = self.control.events(node_name, self._on_event)
        self._sweeper = Periodic("sfu-dead-workers", self.sweep_dead_workers, 1.0, True)
        self._outage_at = -math.inf  # when this node last found Redis unreachable
        self._watching: defaultdict[str, set[str]] = defaultdict(set)  # sid -> call ids

    async def start(self) -> None:
        await self._consumer.start()
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        await self._consumer.stop()

    async def live_workers(self) -> int:
        return len(await self.control.live_workers())

    # -- offers -------------------------------------------------------------------------------

    async def offer(self, session: Session, payload: RtcOffer) -> dict[str, Any]:
        """``rtc.offer`` (a party): the worker's answer."""
        record = await self.calls.get_for(payload.call_id, session.role, session.subject)
        if record.state in IN_CALL:  # before this party's media flows
            record = await self._recheck(record)
        if record.state not in IN_CALL:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"no media for a call {record.state}")
        party: Party = "tablet" if session.role == "tablet" else "family"
        try:
            answer = await self.control.offer(record.call_id, party, payload.sdp)
        except ControlError as exc:
            raise _protocol_error(exc) from exc
        return {"sdp": answer}

    async def _recheck(self, record: CallRecord) -> CallRecord:
        """Privileged status decided again; a call that cannot be made private ends."""
        try:
            return await self.privilege.recheck(record)
        except CannotPrivatize:
            await self.calls.end(record, "connection_lost")
            return await self.calls.store.get(record.call_id) or record

    async def watch(self, session: Session, payload: RtcOffer) -> dict[str, Any]:
        """``monitor.watch``: the worker's answer for a silent viewer."""
        record = await self.monitoring.scoped(session, payload.call_id, allow_privileged=False)
        if record.state not in IN_CALL:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"no media for a call {record.state}")
        try:
            answer = await self.control.watch(record.call_id, session.sid, payload.sdp)
        except ControlError as exc:
            raise _protocol_error(exc) from exc
        self._watching[session.sid].add(record.call_id)
        await self.monitoring.add_watcher(record.call_id, session.sid)
        now = await self.calls.store.get(record.call_id)
        if now is not None and now.privileged:  # turned privileged while the worker answered
            await self._stop_watching(session.sid, record.call_id)
            raise ProtocolError(ErrorCode.PRIVILEGED, "privileged calls are not monitored")
        return {"sdp": answer}

    async def unwatch(self, session: Session, payload: CallRef) -> dict[str, Any]:
        record = await self.monitoring.scoped(session, payload.call_id, allow_privileged=True)
        await self._stop_watching(session.sid, record.call_id)
        return {}

    async def monitor_gone(self, session: Session) -> None:
        """A monitor's socket went away: its watches end."""
        for call_id in list(self._watching.pop(session.sid, ())):
            await self._stop_watching(session.sid, call_id)

    async def _stop_watching(self, sid: str, call_id: str) -> None:
        self._watching[sid].discard(call_id)
        if await self.monitoring.remove_watcher(call_id, sid):
            try:
                await self.control.unwatch(call_id, sid)
            except ControlError as exc:
                log.info("unwatch %s on its worker: %s", call_id, exc)

    # -- worker events ------------------------------------------------------------------------

    async def _on_event(self, event: WorkerEvent) -> None:
        """One worker event (events of different calls concurrently, of one call in order).
        Idempotent: a retried event finds the call already moved on. Ending a call returns
        once it is ``ENDED``; the end-of-call chain runs in the background."""
        record = await self.calls.store.get(event.call_id)
        if record is None:
            return
        if event.type == "connected" and record.state == CallState.ACCEPTED:
            record = await self._recheck(record)  # media flows from now on
            if record.state == CallState.ACCEPTED:
                await self.calls.connect(record)
        elif event.type == "media_lost":
            await self.calls.end(record, "connection_lost")
        elif event.type == "quality":
            await call_quality.relay(self.calls, record, event)
        elif event.type == "closed" and record.live:
            # The worker dropped a call we did not close: it is shutting down, or was fenced off.
            reason = "server_shutdown" if event.reason == "shutdown" else "connection_lost"
            await self.calls.end(record, reason)

    async def end_worker_calls(self, worker_ids: list[str], reason: str) -> int:
        """End every live call on these workers (e.g. ``server_shutdown`` before they stop)."""
        ended = 0
        for worker in worker_ids:
            call_ids = [text(raw) for raw in await self._redis.smembers(WORKER_CALLS(worker))]
            ended += await self._end_calls(call_ids, reason)
        return ended

    async def sweep_dead_workers(self) -> None:
        """End the calls of workers whose alive key expired, unless this node itself could not
        reach Redis within the last alive TTL (a restart, a Sentinel failover): the workers'
        heartbeats may have failed for the same reason, and they get one TTL to beat again."""
        asked = time.monotonic()
        try:
            dead = await self.control.dead_workers()
        except (RedisError, OSError):
            self._outage_at = time.monotonic()
            raise
        now = time.monotonic()
        if now - asked > OUTAGE_S:  # our commands were retried: Redis was away meanwhile
            self._outage_at = now
        if dead and now - self._outage_at < ALIVE_TTL_MS / 1000:
            log.warning(
                "Redis was unreachable: not yet ending the calls of workers %s", sorted(dead)
            )
            return
        for worker in dead:
            last_beat = await self.control.last_beat(worker)
            call_ids = await self.control.claim_dead_worker(worker)
            if call_ids:
                log.warning("SFU worker %s died; ending its calls %s", worker, call_ids)
                # Charged for connected time only: up to the worker's last sign of life.
                await self._end_calls(call_ids, "connection_lost", at=last_beat)

    async def _end_calls(self, call_ids: list[str], reason: str, at: float | None = None) -> int:
        ended = 0
        for call_id in call_ids:
            record = await self.calls.store.get(call_id)
            if record is not None and await self.calls.end(record, reason, at=at):
                ended += 1
        return ended
