"""The SFU worker: owns whole calls (:class:`media.room.Room`), driven over Redis.

The process around it (command line, signals, uvloop) is :mod:`visitation.worker`
(``python -m visitation.worker``). It forwards RTP packets without decoding (:mod:`media.forwarding`), heartbeats
into the registry from a thread of its own (:mod:`media.liveness`), admits calls up to
``--max-calls`` and serves control requests concurrently (see
:mod:`media.control_worker`). On SIGTERM it closes every room (``closed`` events, reason
``shutdown``), deregisters and exits 0; SIGINT does the same unless the worker runs under a
pool (``--parent-pid``), whose parent ends its calls first and then sends SIGTERM. It also
wraps every aiortc codec entry point with counters: ``stats`` reports how many decoders and
encoders were ever used in this process, which must stay 0 (nothing is transcoded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCIceServer
from redis.asyncio import Redis

from core.runtime import CollectAfterCalls
from media import control
from media.admission import DEFAULT_MAX_CALLS, LOAD_WINDOW_S, CallCostMeter
from media.codec_guard import CodecCounters
from media.control import (
    ALIVE_TTL_MS,
    CAPACITY,
    HEARTBEAT_S,
    INVALID_STATE,
    NOT_FOUND,
    RECORDING_UNAVAILABLE,
    CloseCall,
    CloseReason,
    ControlError,
    EventType,
    OpenCall,
    Party,
    WorkerEvent,
    WorkerStatus,
)
from media.control_worker import ControlServer, EventPublisher, WorkerRegistry
from media.ice import IcePorts
from media.liveness import HeartbeatThread, LoopLag
from media.metrics import WorkerMetrics
from media.room import Room
from recorder import CallRecording, RecorderTap, Storage
from rtpkit.latency import counts_of, merge, summarize
from rtpkit.outlet import COMPILED

log = logging.getLogger("media.worker")  # not "__main__" under -m


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class SfuWorker:
    """Rooms keyed by call id, the control endpoint, heartbeats and the event stream."""

    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        *,
        redis_url: str,
        counters: CodecCounters | None = None,
        ice_servers: Callable[[], list[RTCIceServer]] | None = None,
        network: IcePorts | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        alive_ttl_ms: int = ALIVE_TTL_MS,
        parent_pid: int | None = None,
        recordings: Storage | None = None,
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        self.worker_id = worker_id
        self.max_calls = max_calls
        self._recordings = recordings
        self._taps: dict[str, RecorderTap] = {}
        self.redis = redis
        self.counters = counters or CodecCounters()
        self.rooms: dict[str, Room] = {}
        self.started_at = time.time()
        self.stopped = asyncio.Event()
        self._ice_servers = ice_servers  # fresh TURN credentials for each call
        self._network = network  # --rtc-ports share and --announce-ip (media.ice)
        self._registry = WorkerRegistry(redis, worker_id, alive_ttl_ms=alive_ttl_ms)
        self._events = EventPublisher(redis)
        self._server = ControlServer(redis, worker_id, self.handle)
        self._lag: LoopLag | None = None
        self._cpu = (time.monotonic(), time.process_time())
        self._load = 0.0
        self._lag_avg_ms = 0.0
        self._cost = CallCostMeter()  # what one call costs this process, for admission
        self._collector = CollectAfterCalls()
        # Sampled on the loop, published by the heartbeat (see media.metrics).
        self.metrics = WorkerMetrics(
            worker_id,
            self.rooms,
            self._taps,
            lag_s=lambda: self._lag.recent_max_s() if self._lag is not None else 0.0,
            load=lambda: self._load,
        )
        # Liveness from a thread of its own: a busy event loop is late, never "dead".
        self._heartbeat = HeartbeatThread(
            redis_url,
            worker_id,
            self.status,
            interval_s=heartbeat_s,
            alive_ttl_ms=alive_ttl_ms,
            on_fenced=self._fenced,
            parent_pid=parent_pid,
            on_orphaned=self._orphaned,
            metrics=self.metrics.exposition,
        )
        self._closing: set[str] = set()
        self._opening: set[str] = set()  # recordings being opened (storage I/O, in a thread)
        self._fencing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Registered (and reachable) before the first request can arrive.
        await asyncio.to_thread(self._heartbeat.register)
        loop = asyncio.get_running_loop()
        self._lag = LoopLag(loop)
        self._lag.start()
        self.metrics.start(loop)
        self._events.start()
        self._server.start()
        self._heartbeat.start(loop)
        log.info("sfu worker %s ready (pid %d)", self.worker_id, os.getpid())

    async def stop(self) -> None:
        """Stop taking requests, close every room (``closed`` events), deregister."""
        await self._server.stop()
        closing = [self._close_room(call_id, "shutdown") for call_id in tuple(self.rooms)]
        for result in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("sfu worker %s: closing a call failed: %r", self.worker_id, result)
        await asyncio.to_thread(self._heartbeat.stop)
        self.metrics.stop()
        if self._lag is not None:
            self._lag.stop()
        self._collector.stop()
        await self._events.stop()
        with contextlib.suppress(Exception):
            await self._registry.deregister()
        if self._recordings is not None:  # every file is closed (and uploaded) by now
            await asyncio.to_thread(self._recordings.close)
        log.info("sfu worker %s stopped", self.worker_id)

    def _orphaned(self) -> None:
        log.warning("sfu worker %s: parent process gone; shutting down", self.worker_id)
        self.stopped.set()

    def _fenced(self) -> None:
        """Our alive key lapsed and signaling claimed our calls (ended connection_lost):
        fence ourselves by closing those rooms rather than serving ghosts."""
        if not self.rooms or (self._fencing is not None and not self._fencing.done()):
            return
        log.error(
            "sfu worker %s was declared dead; closing %d calls", self.worker_id, len(self.rooms)
        )
        self._fencing = asyncio.ensure_future(self._fence())

    async def _fence(self) -> None:
        for call_id in tuple(self.rooms):
            try:
                await self._close_room(call_id, "fenced")
            except Exception:
                log.exception("sfu worker %s: fencing call %s failed", self.worker_id, call_id)

    def status(self) -> WorkerStatus:
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu
        self._cpu = (wall, cpu)
        now_load = (cpu - last_cpu) / (wall - last_wall) if wall > last_wall else 0.0
        # Smoothed over ~LOAD_WINDOW_S: admission follows sustained load, not one busy set-up.
        weight = min(1.0, (wall - last_wall) / LOAD_WINDOW_S)
        self._load += (now_load - self._load) * weight
        load = self._load
        self._cost.update(load, len(self.rooms), wall)
        lag_ms = 1000 * self._lag.take_max() if self._lag is not None else 0.0
        # Admission follows sustained lateness too: one hiccup (the machine busy for a moment)
        # must not refuse calls.
        self._lag_avg_ms += (lag_ms - self._lag_avg_ms) * weight
        return WorkerStatus(
            calls=len(self.rooms),
            load=round(load, 3),
            pid=os.getpid(),
            started_at=self.started_at,
            loop_lag_ms=round(lag_ms, 1),
            loop_lag_avg_ms=round(self._lag_avg_ms, 1),
            max_calls=self.max_calls,
            call_cost=round(self._cost.call_cost, 4),
        )

    # ---------------------------------------------------------------- requests

    async def handle(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        request = control.parse_args(op, args)
        if isinstance(request, OpenCall):
            try:
                opened = await self._open_call(request)
            except ControlError as exc:
                if exc.code == CAPACITY:
                    self.metrics.refused += 1
                raise
            if opened["created"]:
                self.metrics.opened += 1
            return opened
        if isinstance(request, control.Offer):
            sdp = await self._room(request.call_id).offer(request.party, request.sdp)
            return {"sdp": sdp}
        if isinstance(request, control.Watch):
            sdp = await self._room(request.call_id).watch(request.watcher_id, request.sdp)
            return {"sdp": sdp}
        if isinstance(request, control.Unwatch):
            return {"removed": await self._room(request.call_id).unwatch(request.watcher_id)}
        if isinstance(request, CloseCall):
            return {"closed": await self._close_room(request.call_id, "close_call")}
        if isinstance(request, control.Privatize):
            return await self._privatize(request.call_id)
        return self.stats()

    async def _open_call(self, request: OpenCall) -> dict[str, Any]:
        room = self.rooms.get(request.call_id)
        if room is not None:
            if room.privileged != request.privileged:
                raise ControlError(INVALID_STATE, f"call {request.call_id} is already open")
            return {"worker_id": self.worker_id, "created": False}  # a retried open_call
        if request.call_id in self._closing:
            raise ControlError(INVALID_STATE, f"call {request.call_id} is closing")
        if request.call_id in self._opening:
            raise ControlError(INVALID_STATE, f"call {request.call_id} is opening")
        # Admission, in case two nodes raced for the room (calls still opening count too).
        if len(self.rooms) + len(self._opening) >= self.max_calls:
            raise ControlError(CAPACITY, f"{self.worker_id} already has {len(self.rooms)} calls")

        def on_event(kind: EventType, party: Party | None) -> None:
            reporting = self.rooms.get(request.call_id) if kind == "quality" else None
            if kind == "quality" and reporting is None:
                return  # closed meanwhile
            event = WorkerEvent(
                type=kind,
                call_id=request.call_id,
                worker_id=self.worker_id,
                party=party,
                quality=json.dumps(reporting.quality.as_dict()) if reporting else None,
            )
            self._events.emit(event)

        # Decided here, before any media flows: privileged calls never get a recorder. A call
        # that cannot be recorded is refused before anyone is connected.
        recording = None
        if not request.privileged and self._recordings is not None:
            self._opening.add(request.call_id)
            try:
                recording = await self._open_recording_off_loop(request.call_id)
            finally:
                self._opening.discard(request.call_id)
        room = Room(
            request.call_id,
            on_event,
            privileged=request.privileged,
            media_timeout_s=request.media_timeout_s,
            ice_servers=self._ice_servers() if self._ice_servers is not None else None,
            network=self._network,
        )
        self.rooms[request.call_id] = room
        try:
            await self._registry.add_call(request.call_id)
        except BaseException:
            del self.rooms[request.call_id]
            if recording is not None:
                await asyncio.to_thread(self._drop_recording, recording)
            raise
        if recording is not None:
            self._taps[request.call_id] = RecorderTap.for_room(room, recording)
        room.start()
        log.info("call %s opened (privileged=%s)", request.call_id, request.privileged)
        return {"worker_id": self.worker_id, "created": True}

    async def _privatize(self, call_id: str) -> dict[str, Any]:
        """The call turned privileged after it opened (its contact was marked meanwhile): its
        monitors are dropped, and its recording stopped and deleted (the file and what it
        held), as if it had never been recorded."""
        room = self._room(call_id)
        watchers = await room.privatize()
        tap = self._taps.pop(call_id, None)
        if tap is not None:
            await tap.aclose()
            await asyncio.to_thread(self._drop_recording, tap.recording)
        log.info(
            "call %s turned privileged: %d monitor(s) dropped, recording deleted: %s",
            call_id,
            len(watchers),
            tap is not None,
        )
        return {"watchers": watchers, "recording_discarded": tap is not None}

    def _open_recording(self, call_id: str) -> CallRecording | None:
        if self._recordings is None:
            return None
        try:
            file = self._recordings.open_recording(call_id)
            try:
                return CallRecording.open(file, call_id)
            except BaseException:
                self._recordings.discard_recording(call_id)
                raise
        except (OSError, av.FFmpegError) as exc:
            log.error("call %s: cannot open its recording: %s", call_id, exc)
            raise ControlError(
                RECORDING_UNAVAILABLE, f"cannot record call {call_id}: {exc}"
            ) from exc

    async def _open_recording_off_loop(self, call_id: str) -> CallRecording | None:
        """:meth:`_open_recording` in a thread (object storage answers over the network; the
        loop forwards media meanwhile). Abandoned (the request expired), the file is dropped."""
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(None, self._open_recording, call_id)
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:

            def drop(done: asyncio.Future[CallRecording | None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    recording = done.result()
                    if recording is not None:
                        loop.run_in_executor(None, self._drop_recording, recording)

            opening.add_done_callback(drop)
            raise

    def _drop_recording(self, recording: CallRecording) -> None:
        recording.close()
        assert self._recordings is not None
        self._recordings.discard_recording(recording.call_id)

    def _room(self, call_id: str) -> Room:
        room = self.rooms.get(call_id)
        if room is None:
            raise ControlError(NOT_FOUND, f"call {call_id} is not open on {self.worker_id}")
        return room

    async def _close_room(self, call_id: str, reason: CloseReason) -> bool:
        room = self.rooms.pop(call_id, None)
        if room is None:
            return False
        self._closing.add(call_id)
        try:
            await room.close()
            tap = self._taps.pop(call_id, None)
            problems = None
            if tap is not None:
                await tap.aclose()  # the file is whole before anyone hears "closed"
                problems = tap.problems()
            await self._registry.remove_call(call_id, problems)
            closed = WorkerEvent(
                type="closed", call_id=call_id, worker_id=self.worker_id, reason=reason
            )
            self._events.emit(closed)
        finally:
            self._closing.discard(call_id)
        log.info("call %s closed (%s)", call_id, reason)
        self._collector.call_ended()  # the closed call's cycles, before they pile up
        return True

    def _room_stats(self, call_id: str, room: Room) -> dict[str, Any]:
        stats = room.stats()
        tap = self._taps.get(call_id)
        if tap is not None:
            stats["recording"] = tap.stats()
        return stats

    def stats(self) -> dict[str, Any]:
        codecs = dict(self.counters.calls)
        return {
            "worker_id": self.worker_id,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "calls": len(self.rooms),
            "rooms": {
                call_id: self._room_stats(call_id, room) for call_id, room in self.rooms.items()
            },
            "forwarding_delay": summarize(
                merge(counts_of(room.delay.snapshot()) for room in self.rooms.values())
            ),
            "cpu_s": time.process_time(),
            "codecs": codecs,
            "decoders": sum(n for k, n in codecs.items() if "decode" in k.lower()),
            "encoders": sum(n for k, n in codecs.items() if "encode" in k.lower()),
            "transcoders": self.counters.total,  # must stay 0
            "codec_guard": self.counters.installed,
            "compiled_send": COMPILED,  # rtpkit._srtpsend, else the pure-Python outlet
        }
