"""Records a call's four publishers (the SFU room's RTP streams) into a :class:`CallRecording`.

The forwarding loop only appends each packet to a list (``Publisher.add_tap``: no copy, no
parsing). Every ``flush_interval_s`` the tap takes that list, still on the worker's event
loop, assembles frames from its packets (:class:`rtpkit.rtp.FrameAssembler`: reordering and
late retransmissions are absorbed, a frame that cannot be completed is dropped and video
resumes at its next key frame) and muxes them, without transcoding (about a quarter of a
millisecond per call). Only the disk is off the loop: the recording writes through a
:class:`~recorder.spool.Spool`, whose thread does the I/O. A slow or stalled disk therefore
never delays a forwarded packet: writes wait in memory, up to ``max_backlog_s``, after which
new batches are dropped and counted (the recording then has a gap, not the call).

Why mux on the loop and not in a thread per call (as this module did before): libav
releases the GIL for every packet it allocates, frees or muxes, and a writer thread that
wants it back waits for the loop to let go. ``make bench-recorder`` (25 calls beside a
forwarding loop) measured a thread per call at 0.45 % of a core per call and 3,500 context
switches a second, against 0.28 % and 500 for the tap on the loop.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from recorder.muxer import PARTIES, TRACKS, CallRecording, Kind, Party, RecordingStats
from recorder.service import PrivilegedCallError
from rtpkit.rtp import FrameAssembler

log = logging.getLogger(__name__)

#: ``tap(packet, keyframe_start, arrival)`` where ``packet`` has aiortc ``RtpPacket`` fields.
PacketTap = Callable[[Any, bool, float], None]
CLOCK_RATES: dict[Kind, int] = {"video": 90000, "audio": 48000}

MS_PER_TICK: dict[Kind, float] = {kind: 1000 / rate for kind, rate in CLOCK_RATES.items()}


@dataclass(eq=False, slots=True)
class _Track:
    """One of the call's four recorded tracks: its frames are assembled here."""

    party: Party
    kind: Kind
    assembler: FrameAssembler
    ms_per_tick: float  # RTP clock ticks to milliseconds


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


class RecorderTap:
    def __init__(
        self,
        recording: CallRecording,
        *,
        keyframe_interval_s: float = 10.0,
        wait_for_both_parties: bool = True,
        flush_interval_s: float = 0.1,
        max_backlog_s: float = 60.0,
    ) -> None:
        self.recording = recording
        self._interval = keyframe_interval_s
        self._waiting = wait_for_both_parties
        self._flush_interval = flush_interval_s
        self._max_backlog_s = max_backlog_s
        self._heard: set[Party] = set()
        self._publishers: dict[tuple[Party, Kind], PublisherLike] = {}
        self._removers: dict[tuple[Party, Kind], Callable[[], None]] = {}
        self._tracks = {
            (party, kind): _Track(party, kind, FrameAssembler(kind == "video"), MS_PER_TICK[kind])
            for party, kind in TRACKS
        }
        self._batch: list[tuple[_Track, Any, float]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last_key: dict[Party, float] = {}
        self._last_request: dict[Party, float] = {}
        self._closing: asyncio.Future[RecordingStats] | None = None
        self.dropped = 0  # packets not recorded because the disk fell too far behind
        self.error: str | None = None  # the tap itself failed (recording stopped)
        self.closed = False

    @classmethod
    def for_room(cls, room: RoomLike, recording: CallRecording, **options: Any) -> RecorderTap:
        """Record ``room`` from now on (call before the parties offer, or at any time after).

        Raises :class:`PrivilegedCallError` for a privileged room: never recorded."""
        if room.privileged:
            raise PrivilegedCallError(f"call {room.call_id} is privileged: never recorded")
        tap = cls(recording, **options)
        for party, kind in TRACKS:
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
            self._flush()  # what the old source sent, then start over from the new one
            if self.closed:
                return  # the flush failed: the tap is detached
            self._tracks[party, kind].assembler.reset()
            self.recording.resync(party, kind)
        self._publishers[party, kind] = publisher
        on_packet = functools.partial(self._on_packet, self._tracks[party, kind], publisher)
        self._removers[party, kind] = publisher.add_tap(on_packet)
        if kind == "video":
            publisher.request_keyframe()

    def _on_packet(
        self,
        track: _Track,
        publisher: PublisherLike,
        packet: Any,
        keyframe_start: bool,
        arrival: float,
    ) -> None:
        party = track.party
        if self._waiting:
            self._heard.add(party)
            if len(self._heard) < len(PARTIES):
                return
            self._waiting = False  # connected: start now, videos at their next key frames
            for (_, other_kind), other in self._publishers.items():
                if other_kind == "video":
                    other.request_keyframe()
        if track.kind == "video":
            if keyframe_start:
                self._last_key[party] = arrival
            elif arrival - self._last_key.get(party, -math.inf) > self._interval:
                if arrival - self._last_request.get(party, -math.inf) > 1.0:
                    self._last_request[party] = arrival
                    publisher.request_keyframe()
        self._batch.append((track, packet, arrival))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_interval, self._flush)

    def _flush(self) -> None:
        """Assemble and mux the batch (on the loop; the disk is the spool's thread's)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        if self.recording.backlog_s > self._max_backlog_s:
            self.dropped += len(batch)  # the disk is far behind: keep the call, lose this
            if self.dropped == len(batch):
                log.error("call %s: recorder backlog full; dropping media", self.recording.call_id)
            return
        write = self.recording.write_frame
        try:
            for track, packet, arrival in batch:
                frames = track.assembler.push(
                    packet.sequence_number, packet.timestamp, packet.marker, packet.payload, arrival
                )
                for frame in frames:
                    ms = frame.timestamp * track.ms_per_tick
                    write(track.party, track.kind, frame.data, ms, frame.arrival)
        except Exception as exc:  # a bug, not the media: stop recording, keep the call
            self.error = f"the recorder failed: {exc!r}"
            log.exception("call %s: recorder failed; recording stopped", self.recording.call_id)
            self._detach()

    def _detach(self) -> None:
        self.closed = True
        for remove in self._removers.values():
            remove()
        self._removers.clear()
        self._publishers.clear()
        self._flush()

    def stats(self) -> dict[str, Any]:
        """How far the writer is behind, what it dropped, what the file holds so far."""
        recording = self.recording.stats
        return {
            "pending_writes": self.recording.pending_writes,
            "dropped_packets": self.dropped,
            "frames": recording.packets,
            "failed": recording.failed,
        }

    def problems(self) -> tuple[str, ...]:
        """What could not be recorded (once closed): empty if the file is whole."""
        found = [p for p in (self.recording.stats.failed, self.error) if p]
        if self.dropped:
            found.append(f"{self.dropped} packets not recorded: the disk fell too far behind")
        return tuple(found)

    def close(self) -> RecordingStats:
        """Stop taking packets, write what is queued, close the file (blocks until done)."""
        if not self.closed:
            self._detach()
        return self.recording.close()

    async def aclose(self) -> RecordingStats:
        """:meth:`close` without blocking the event loop (the disk may be slow)."""
        if not self.closed:
            self._detach()
        if self._closing is None:
            self._closing = asyncio.ensure_future(asyncio.to_thread(self.recording.close))
        return await asyncio.shield(self._closing)
