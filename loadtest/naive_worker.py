"""The naive aiortc pipeline, run by the benchmark side by side with the SFU worker.

``python -m loadtest.naive_worker --worker-id ID [--record-dir DIR] [--parent-pid PID]``
(Redis URL from ``--redis-url`` or ``$REDIS_URL``, as for :mod:`visitation.worker`).

It speaks the same control channel as the real worker (:class:`media.control_worker.ControlServer`,
:class:`~media.control_worker.EventPublisher`, :class:`~media.control_worker.WorkerRegistry`), so
the signaling node places calls on it unchanged, but each call is what a straightforward aiortc
server would do: plain ``RTCPeerConnection`` objects whose receivers decode, an
``aiortc.contrib.media.MediaRelay`` feeding every received track to the other party's and the
monitors' senders (each re-encodes), and an ``aiortc.contrib.media.MediaRecorder`` writing both
parties' audio and video to a ``.webm`` (encoding again). Tracks relayed to senders and to the
recorder are unbuffered (a slow consumer skips frames instead of queueing decoded pictures
without bound), so when this pipeline cannot keep up it shows as frame loss, not as memory
growth. ``stats`` counts the frames each party's receiver decoded.

Supported: ``open_call``, one offer per party, ``watch``/``unwatch``, ``close_call``, ``stats``
(``connected`` is emitted once decoded frames arrived from both parties; no ``media_lost``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from redis.asyncio import Redis

from core.redis_pool import connect
from media import control
from media.control import (
    ALIVE_TTL_MS,
    HEARTBEAT_S,
    INVALID_SDP,
    INVALID_STATE,
    NOT_FOUND,
    PARTIES,
    ControlError,
    EventType,
    Party,
    WorkerEvent,
    WorkerStatus,
)
from media.control_worker import ControlServer, EventPublisher, WorkerRegistry
from media.liveness import HeartbeatThread
from rtpkit.rtp import MEDIA_KINDS

log = logging.getLogger("loadtest.naive_worker")


class NaiveRoom:
    """One call: decode on receive, MediaRelay fan-out, encode per sender, MediaRecorder."""

    def __init__(self, call_id: str, worker: NaiveWorker, record_dir: Path | None) -> None:
        self.call_id = call_id
        self._worker = worker
        self._record_dir = record_dir
        self._config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.relay = MediaRelay()
        self.parties: dict[Party, RTCPeerConnection] = {}
        self.monitors: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[tuple[Party, str], MediaStreamTrack] = {}
        self.frames: dict[tuple[Party, str], int] = {}
        self._waiting: list[tuple[Party, str, RTCRtpSender]] = []
        self._taps: list[asyncio.Task[None]] = []
        self.recorder: MediaRecorder | None = None
        self.connected = False
        self.closed = False

    async def offer(self, party: Party, sdp: str) -> str:
        if party in self.parties:
            raise ControlError(INVALID_STATE, "the naive pipeline takes one offer per party")
        pc = RTCPeerConnection(self._config)
        self.parties[party] = pc
        pc.on("track", lambda track: self._received(party, track))
        other: Party = "family" if party == "tablet" else "tablet"
        answer = await self._answer(pc, sdp, 1, "sendrecv", lambda _index: other)
        await self._maybe_record()
        return answer

    async def watch(self, watcher_id: str, sdp: str) -> str:
        old = self.monitors.pop(watcher_id, None)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(self._config)
        self.monitors[watcher_id] = pc
        return await self._answer(pc, sdp, 2, "sendonly", lambda index: PARTIES[index])

    async def unwatch(self, watcher_id: str) -> bool:
        pc = self.monitors.pop(watcher_id, None)
        if pc is not None:
            await pc.close()
        return pc is not None

    async def _answer(
        self, pc: RTCPeerConnection, sdp: str, pairs: int, direction: str, source: Any
    ) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:
            raise ControlError(INVALID_SDP, f"unusable offer: {exc}") from exc
        seen = dict.fromkeys(MEDIA_KINDS, 0)
        for transceiver in pc.getTransceivers():
            if transceiver.kind not in seen or seen[transceiver.kind] >= pairs:
                raise ControlError(INVALID_SDP, "unexpected m-lines")
            transceiver.direction = direction
            self._feed(source(seen[transceiver.kind]), transceiver.kind, transceiver.sender)
            seen[transceiver.kind] += 1
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def _feed(self, source: Party, kind: str, sender: RTCRtpSender) -> None:
        track = self.tracks.get((source, kind))
        if track is None:
            self._waiting.append((source, kind, sender))
        else:
            sender.replaceTrack(self.relay.subscribe(track, buffered=False))

    def _received(self, party: Party, track: MediaStreamTrack) -> None:
        self.tracks[(party, track.kind)] = track
        self.frames[(party, track.kind)] = 0
        for waiting in [w for w in self._waiting if w[:2] == (party, track.kind)]:
            self._waiting.remove(waiting)
            self._feed(*waiting)
        tap = self.relay.subscribe(track)  # buffered: counts every decoded frame
        self._taps.append(asyncio.ensure_future(self._count(party, tap)))

    async def _count(self, party: Party, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[(party, track.kind)] += 1
                if not self.connected and all(self.frames.get((p, "video"), 0) for p in PARTIES):
                    self.connected = True
                    self._worker.emit("connected", self.call_id)

    async def _maybe_record(self) -> None:
        if self._record_dir is None or self.recorder is not None or len(self.tracks) < 4:
            return
        self.recorder = MediaRecorder(str(self._record_dir / f"{self.call_id}.webm"))
        for party in PARTIES:
            for kind in MEDIA_KINDS:
                self.recorder.addTrack(self.relay.subscribe(self.tracks[(party, kind)], False))
        await self.recorder.start()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self._taps:
            task.cancel()
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                await self.recorder.stop()
        pcs = [*self.parties.values(), *self.monitors.values()]
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        parties = {
            p: {"frames": {k: n for (q, k), n in self.frames.items() if q == p}} for p in PARTIES
        }
        return {"call_id": self.call_id, "connected": self.connected, "parties": parties}


class NaiveWorker:
    def __init__(
        self, redis: Redis, redis_url: str, worker_id: str, record_dir: Path | None, **opts: Any
    ) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.rooms: dict[str, NaiveRoom] = {}
        self.started_at = time.time()
        self.stopped = asyncio.Event()
        self._record_dir = record_dir
        self._registry = WorkerRegistry(redis, worker_id, alive_ttl_ms=opts["alive_ttl_ms"])
        self._events = EventPublisher(redis)
        self._server = ControlServer(redis, worker_id, self.handle)
        self._heartbeat = HeartbeatThread(
            redis_url,
            worker_id,
            self.status,
            interval_s=opts["heartbeat_s"],
            alive_ttl_ms=opts["alive_ttl_ms"],
            on_fenced=lambda: None,  # a baseline: it keeps its calls
            parent_pid=opts.get("parent_pid"),
            on_orphaned=self.stopped.set,
        )

    def emit(self, kind: EventType, call_id: str) -> None:
        self._events.emit(WorkerEvent(type=kind, call_id=call_id, worker_id=self.worker_id))

    async def start(self) -> None:
        await asyncio.to_thread(self._heartbeat.beat)
        self._events.start()
        self._server.start()
        self._heartbeat.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        await self._server.stop()
        for call_id in tuple(self.rooms):
            await self._close(call_id)
        await asyncio.to_thread(self._heartbeat.stop)
        await self._events.stop()
        with contextlib.suppress(Exception):
            await self._registry.deregister()

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            calls=len(self.rooms), load=0.0, pid=os.getpid(), started_at=self.started_at
        )

    async def handle(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        request = control.parse_args(op, args)
        if isinstance(request, control.OpenCall):
            if request.call_id not in self.rooms:
                self.rooms[request.call_id] = NaiveRoom(request.call_id, self, self._record_dir)
                await self._registry.add_call(request.call_id)
            return {"worker_id": self.worker_id, "created": True}
        if isinstance(request, control.Offer):
            return {"sdp": await self._room(request.call_id).offer(request.party, request.sdp)}
        if isinstance(request, control.Watch):
            sdp = await self._room(request.call_id).watch(request.watcher_id, request.sdp)
            return {"sdp": sdp}
        if isinstance(request, control.Unwatch):
            return {"removed": await self._room(request.call_id).unwatch(request.watcher_id)}
        if isinstance(request, control.CloseCall):
            return {"closed": await self._close(request.call_id)}
        return {
            "worker_id": self.worker_id,
            "pid": os.getpid(),
            "pipeline": "naive",
            "calls": len(self.rooms),
            "rooms": {call_id: room.stats() for call_id, room in self.rooms.items()},
            "cpu_s": time.process_time(),
        }

    def _room(self, call_id: str) -> NaiveRoom:
        room = self.rooms.get(call_id)
        if room is None:
            raise ControlError(NOT_FOUND, f"call {call_id} is not open on {self.worker_id}")
        return room

    async def _close(self, call_id: str) -> bool:
        room = self.rooms.pop(call_id, None)
        if room is None:
            return False
        await room.close()
        self._events.emit(
            WorkerEvent(
                type="closed", call_id=call_id, worker_id=self.worker_id, reason="close_call"
            )
        )
        await self._registry.remove_call(call_id)
        return True


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.naive_worker", description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--record-dir", type=Path, default=None, help="default: no recorder")
    parser.add_argument("--heartbeat-s", type=float, default=HEARTBEAT_S)
    parser.add_argument("--alive-ttl-ms", type=int, default=ALIVE_TTL_MS)
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("--redis-url (or REDIS_URL) is required")
    return args


async def run(args: argparse.Namespace) -> int:
    redis = connect(args.redis_url)
    worker = NaiveWorker(
        redis,
        args.redis_url,
        args.worker_id,
        args.record_dir,
        parent_pid=args.parent_pid,
        heartbeat_s=args.heartbeat_s,
        alive_ttl_ms=args.alive_ttl_ms,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stopped.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the parent decides (SIGTERM)
    try:
        await worker.start()
        await worker.stopped.wait()
    finally:
        await worker.stop()
        await redis.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s naive[%(process)d] %(name)s: %(message)s",
    )
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
