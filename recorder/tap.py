"""Records a call's four publishers (the SFU room's RTP streams) into a :class:`CallRecording`,
off the forwarding path.

The forwarding loop only appends each packet to a list (``Publisher.add_tap``: no copy, no
parsing). Every ``flush_interval_s`` that list goes to the call's writer thread, which
assembles frames from the packets (:class:`rtpkit.rtp.FrameAssembler`: reordering and late
retransmissions are absorbed, a frame that cannot be completed is dropped and video resumes at
its next key frame) and muxes them, still without transcoding. A slow or stalled disk
therefore never delays a forwarded packet: batches wait in memory, up to ``max_backlog_s``,
after which new ones are dropped and counted (the recording then has a gap, not the call).

Recording starts once *both* parties have sent media (the call's ``connected`` moment, so
monitors' flag offsets index the file) and each video track at its next key frame, which is
requested then. Key frames are also requested every ``keyframe_interval_s`` while recording,
so a browser can seek and a crash-truncated file decodes from a recent point (WebRTC senders
send key frames only when asked). A party that re-offers gets new publishers: the tap follows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol

import av

from recorder.muxer import PARTIES, CallRecording, Kind, Party, RecordingStats
from recorder.service import PrivilegedCallError
from rtpkit.rtp import FrameAssembler

log = logging.getLogger(__name__)

#: ``tap(packet, keyframe_start, arrival)`` where ``packet`` has aiortc ``RtpPacket`` fields.
PacketTap = Callable[[Any, bool, float], None]
CLOCK_RATES: dict[Kind, int] = {"video": 90000, "audio": 48000}

# (party, kind, seq, timestamp, marker, payload, arrival) or (party, kind) = resync
_Item = tuple[Any, ...]


class PublisherLike(Protocol):
    """What the tap needs of ``media.forwarding.Publisher``."""

    kind: str

    def add_tap(self, tap: PacketTap) -> Callable[[], None]: ...

    def request_keyframe(self) -> None: ...


class RoomLike(Protocol):
    """What the tap needs of ``media.room.Room``."""

    call_id: str
    privileged: bool

    def publisher(self, party: Party, kind: str) -> PublisherLike | None: ...

    def add_publisher_listener(self, listener: Callable[[Party, PublisherLike], None]) -> None: ...


class _Writer:
    """The thread that owns a :class:`CallRecording`: assembles frames and muxes them."""

    def __init__(self, recording: CallRecording) -> None:
        self.recording = recording
        self.stats: RecordingStats | None = None
        self.error: str | None = None  # the thread itself failed
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._assemblers = {
            (party, kind): FrameAssembler(kind == "video")
            for party in PARTIES
            for kind in ("audio", "video")
        }
        self._time_bases = {kind: Fraction(1, rate) for kind, rate in CLOCK_RATES.items()}
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{recording.call_id}", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def put(self, batch: list[_Item] | None) -> None:
        self._queue.put(batch)

    def _run(self) -> None:
        try:
            while True:
                batch = self._queue.get()
                if batch is None:
                    break
                for item in batch:
                    self._write(item)
        except Exception as exc:
            self.error = f"the recorder failed: {exc!r}"
            log.exception("call %s: recorder thread failed", self.recording.call_id)
        finally:
            self.stats = self.recording.close()

    def _write(self, item: _Item) -> None:
        if len(item) == 2:
            party, kind = item
            self._assemblers[party, kind].reset()
            self.recording.resync(party, kind)
            return
        party, kind, seq, timestamp, marker, payload, arrival = item
        time_base = self._time_bases[kind]
        for frame in self._assemblers[party, kind].push(seq, timestamp, marker, payload, arrival):
            packet = av.Packet(frame.data)
            packet.pts = packet.dts = frame.timestamp
            packet.time_base = time_base
            self.recording.write(party, kind, packet, frame.arrival)

    def join(self) -> RecordingStats:
        self._thread.join()
        assert self.stats is not None
        return self.stats


class RecorderTap:
    def __init__(
        self,
        recording: CallRecording,
        *,
        keyframe_interval_s: float = 10.0,
        wait_for_both_parties: bool = True,
        flush_interval_s: float = 0.1,
        max_backlog_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recording = recording
        self._interval = keyframe_interval_s
        self._clock = clock
        self._waiting = wait_for_both_parties
        self._flush_interval = flush_interval_s
        self._max_batches = max(1, int(max_backlog_s / flush_interval_s))
        self._heard: set[Party] = set()
        self._publishers: dict[tuple[Party, Kind], PublisherLike] = {}
        self._removers: dict[tuple[Party, Kind], Callable[[], None]] = {}
        self._last_key: dict[Party, float] = {}
        self._last_request: dict[Party, float] = {}
        self._batch: list[_Item] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writer = _Writer(recording)
        self.dropped = 0  # packets not recorded because the disk fell too far behind
        self.closed = False

    @classmethod
    def for_room(cls, room: RoomLike, recording: CallRecording, **options: Any) -> RecorderTap:
        """Record ``room`` from now on (call before the parties offer, or at any time after).

        Raises :class:`PrivilegedCallError` for a privileged room: never recorded."""
        if room.privileged:
            raise PrivilegedCallError(f"call {room.call_id} is privileged: never recorded")
        tap = cls(recording, **options)
        for party in PARTIES:
            for kind in ("audio", "video"):
                publisher = room.publisher(party, kind)
                if publisher is not None:
                    tap.attach(party, publisher)
        room.add_publisher_listener(tap.attach)
        return tap

    def attach(self, party: Party, publisher: PublisherLike) -> None:
        """Record ``publisher`` as ``party``'s track of its kind (replacing a previous one)."""
        if self.closed:
            return
        kind: Kind = "video" if publisher.kind == "video" else "audio"
        remove = self._removers.pop((party, kind), None)
        if remove is not None:
            remove()
            self._append((party, kind))
        self._publishers[party, kind] = publisher
        on_packet = functools.partial(self._on_packet, party, kind, publisher)
        self._removers[party, kind] = publisher.add_tap(on_packet)
        if kind == "video":
            publisher.request_keyframe()

    def _on_packet(
        self,
        party: Party,
        kind: Kind,
        publisher: PublisherLike,
        packet: Any,
        keyframe_start: bool,
        arrival: float,
    ) -> None:
        if self._waiting:
            self._heard.add(party)
            if len(self._heard) < len(PARTIES):
                return
            self._waiting = False  # connected: start now, videos at their next key frames
            for (_, other_kind), other in self._publishers.items():
                if other_kind == "video":
                    other.request_keyframe()
        if kind == "video":
            if keyframe_start:
                self._last_key[party] = arrival
            elif arrival - self._last_key.get(party, -math.inf) > self._interval:
                if arrival - self._last_request.get(party, -math.inf) > 1.0:
                    self._last_request[party] = arrival
                    publisher.request_keyframe()
        self._append(
            (
                party,
                kind,
                packet.sequence_number,
                packet.timestamp,
                packet.marker,
                packet.payload,
                arrival,
            )
        )

    def _append(self, item: _Item) -> None:
        self._batch.append(item)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_interval, self._flush)

    def _flush(self) -> None:
        self._timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        if self._writer.pending >= self._max_batches:
            self.dropped += len(batch)  # the disk is far behind: keep the call, lose this
            if self.dropped == len(batch):
                log.error("call %s: recorder backlog full; dropping media", self.recording.call_id)
            return
        self._writer.put(batch)

    def _detach(self) -> None:
        self.closed = True
        for remove in self._removers.values():
            remove()
        self._removers.clear()
        self._publishers.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batch:
            self._writer.put(self._batch)
            self._batch = []
        self._writer.put(None)

    def stats(self) -> dict[str, Any]:
        """How far the writer is behind, what it dropped, what the file holds so far."""
        recording = self.recording.stats
        return {
            "pending_batches": self._writer.pending,
            "dropped_packets": self.dropped,
            "frames": recording.packets,
            "failed": recording.failed,
        }

    def problems(self) -> tuple[str, ...]:
        """What could not be recorded (once closed): empty if the file is whole."""
        stats = self._writer.stats or self.recording.stats
        found = [p for p in (stats.failed, self._writer.error) if p]
        if self.dropped:
            found.append(f"{self.dropped} packets not recorded: the disk fell too far behind")
        return tuple(found)

    def close(self) -> RecordingStats:
        """Stop taking packets, write what is queued, close the file (blocks until done)."""
        if not self.closed:
            self._detach()
        return self._writer.join()

    async def aclose(self) -> RecordingStats:
        """:meth:`close` without blocking the event loop."""
        if not self.closed:
            self._detach()
        return await asyncio.to_thread(self._writer.join)
