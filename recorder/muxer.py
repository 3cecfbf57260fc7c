"""One call, one WebM file: both parties' VP8 + Opus muxed as they arrive, never transcoded.

:class:`CallRecording` writes four tracks (tablet video, tablet audio, family video, family
audio) of *encoded* frames into a Matroska/WebM container with PyAV. No codec context is ever
opened: video streams are codec-less mux streams (``add_mux_stream``) sized from the first VP8
key frame header; audio streams copy the parameters of a never-opened Opus template and carry
a hand-built ``OpusHead`` as CodecPrivate (browsers need it).

Timestamps: every frame is placed on one call clock in milliseconds (Matroska's native unit),
``0`` = the first frame recorded. Each track follows its own media timestamps (RTP ``pts``),
anchored to the frame's *arrival* time with a minimum-delay estimate, so one party's audio and
video stay in sync with each other and with the other party (see :class:`_MediaClock`).

Crash safety: the Matroska muxer closes a cluster at least every
``cluster_time_limit_ms`` and writes it out; ``flush_packets`` hands every write over at once
to the recording's :class:`~recorder.spool.Spool`, whose thread passes it to the OS (the file
object is unbuffered); interleaving waits at most ``max_interleave_delta_ms``.
A SIGKILLed writer therefore leaves a file that plays up to about the last 1.5 s. A clean
:meth:`CallRecording.close` adds the duration and the cue index (seeking).
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, get_args

import av
from av.container import OutputContainer
from av.stream import Stream

from core.domain import Party as Party
from recorder.bitstream import opus_head, opus_packet_ms, vp8_keyframe_size
from recorder.spool import Spool

log = logging.getLogger(__name__)

Kind = Literal["audio", "video"]
PARTIES: Final[tuple[Party, ...]] = get_args(Party)
TRACKS: Final[tuple[tuple[Party, Kind], ...]] = (
    ("tablet", "video"),
    ("tablet", "audio"),
    ("family", "video"),
    ("family", "audio"),
)
CODECS: Final[dict[Kind, str]] = {"video": "vp8", "audio": "opus"}
MS: Final = Fraction(1, 1000)


@dataclass(frozen=True)
class MuxerOptions:
    cluster_time_limit_ms: int = 1000  # a cluster is written out at least this often
    cluster_size_limit_bytes: int = 4 << 20
    max_interleave_delta_ms: int = 500  # never hold a frame back longer to interleave
    header_wait_s: float = 1.5  # wait this long for both video sizes before the header
    default_size: tuple[int, int] = (640, 360)  # a video track with no key frame yet
    resync_ms: float = 1000.0  # media clock this far behind arrivals: a discontinuity
    drift_leak: float = 0.01  # how fast the arrival-delay estimate may grow, per frame

    def container_options(self) -> dict[str, str]:
        return {
            "cluster_time_limit": str(self.cluster_time_limit_ms),
            "cluster_size_limit": str(self.cluster_size_limit_bytes),
            "flush_packets": "1",
            "max_interleave_delta": str(self.max_interleave_delta_ms * 1000),
        }


@dataclass
class TrackStats:
    party: Party
    kind: Kind
    codec: str
    packets: int = 0
    bytes: int = 0
    skipped: int = 0  # video before its first key frame (undecodable)
    errors: int = 0
    first_ms: int | None = None
    end_ms: int = 0  # last timestamp + duration
    width: int | None = None
    height: int | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"party": self.party, "kind": self.kind, "codec": self.codec}
        if self.kind == "video":
            out |= {"width": self.width, "height": self.height}
        return out | {"packets": self.packets, "bytes": self.bytes}


@dataclass
class RecordingStats:
    call_id: str
    tracks: list[TrackStats]
    failed: str | None = None

    @property
    def duration_s(self) -> float:
        starts = [t.first_ms for t in self.tracks if t.first_ms is not None]
        return max(0, max(t.end_ms for t in self.tracks) - min(starts)) / 1000 if starts else 0.0

    @property
    def packets(self) -> int:
        return sum(t.packets for t in self.tracks)


class _MediaClock:
    """Maps one track's media timestamps onto the call clock (ms since the first frame).

    ``offset`` estimates ``arrival - media time`` at the *smallest* network delay: a frame
    that arrives earlier than expected lowers it at once, later frames raise it only slowly
    (``leak``, following clock drift, not jitter). A jump of more than ``resync_ms`` (a
    party reconnected, RTP timestamps restarted) re-anchors on the arrival time.
    """

    def __init__(self, resync_ms: float, leak: float) -> None:
        self._resync = resync_ms
        self._leak = leak
        self._offset: float | None = None
        self.last_ms = -1

    def reset(self) -> None:
        self._offset = None

    def to_ms(self, media_ms: float | None, arrival_ms: float) -> int:
        if media_ms is None:
            when = arrival_ms
        else:
            seen = arrival_ms - media_ms
            if self._offset is None or seen < self._offset or seen - self._offset > self._resync:
                self._offset = seen
            else:
                self._offset += (seen - self._offset) * self._leak
            when = media_ms + self._offset
        ms = max(round(when), self.last_ms + 1)  # strictly increasing per track
        self.last_ms = ms
        return ms


@dataclass(eq=False)
class _Track:
    stats: TrackStats
    clock: _MediaClock
    stream: Stream | None = None
    waiting_for_keyframe: bool = True

    @property
    def key(self) -> tuple[Party, Kind]:
        return self.stats.party, self.stats.kind


@dataclass(eq=False)
class _Pending:
    track: _Track
    packet: av.Packet[Any]


class CallRecording:
    """Incremental, crash-safe WebM writer for one call; see the module docstring.

    Not thread-safe: call :meth:`write` from one thread (the worker's event loop), then
    :meth:`close` from that thread or, once no more writes come, from another (it waits for
    the disk).
    """

    def __init__(
        self, call_id: str, container: OutputContainer, file: Spool, options: MuxerOptions
    ) -> None:
        self.call_id = call_id
        self.options = options
        self.started = False  # header written
        self.closed = False
        self._container = container
        self._file = file
        self._pending: list[_Pending] = []
        self._t0: float | None = None
        self._failed: str | None = None
        self._tracks: dict[tuple[Party, Kind], _Track] = {
            (party, kind): _Track(
                TrackStats(party, kind, CODECS[kind]),
                _MediaClock(options.resync_ms, options.drift_leak),
                waiting_for_keyframe=kind == "video",
            )
            for party, kind in TRACKS
        }

    @classmethod
    def open(
        cls, target: str | Path | BinaryIO, call_id: str, *, options: MuxerOptions | None = None
    ) -> CallRecording:
        """Start a recording into ``target``: a new file path (never overwritten) or a
        writable, seekable, unbuffered binary file (``Storage.open_write``), which the
        recording then owns and closes."""
        options = options or MuxerOptions()
        file = open(target, "xb", buffering=0) if isinstance(target, str | Path) else target
        spool = Spool(file, name=f"recorder-{call_id}")
        try:
            container = av.open(
                spool, "w", format="webm", container_options=options.container_options()
            )
        except BaseException:
            spool.close()
            raise
        container.metadata["title"] = f"call {call_id}"
        return cls(call_id, container, spool, options)

    # ------------------------------------------------------------------ writing

    def write(
        self, party: Party, kind: Kind, packet: av.Packet[Any], arrival: float | None = None
    ) -> bool:
        """Record one encoded frame that arrived at ``arrival`` (``time.monotonic()`` seconds;
        default now). ``packet`` is not modified. Returns whether the frame was recorded
        (video before a key frame is not: it could not be decoded)."""
        pts, time_base = packet.pts, packet.time_base
        media_ms = None
        if pts is not None and time_base:
            media_ms = pts * 1000 * time_base.numerator / time_base.denominator
        return self.write_frame(party, kind, bytes(packet), media_ms, arrival)

    def write_frame(
        self,
        party: Party,
        kind: Kind,
        data: bytes,
        media_ms: float | None,
        arrival: float | None = None,
    ) -> bool:
        """:meth:`write` for a frame given as its bytes and its media time in milliseconds
        (its RTP timestamp over the clock rate; ``None``: place it by arrival alone).

        The frame is copied once into a packet libav owns, so freeing it never needs the
        GIL (a packet over Python bytes would: a GIL handoff per frame with the loop)."""
        if self.closed or self._failed:
            return False
        track = self._tracks[party, kind]
        size = vp8_keyframe_size(data) if kind == "video" else None
        if track.waiting_for_keyframe:
            if size is None:
                track.stats.skipped += 1
                return False
            track.waiting_for_keyframe = False
        if size is not None:
            track.stats.width, track.stats.height = size
        now = time.monotonic() if arrival is None else arrival
        if self._t0 is None:
            self._t0 = now
        ms = track.clock.to_ms(media_ms, (now - self._t0) * 1000)
        out = av.Packet(len(data))
        memoryview(out)[:] = data
        out.pts = out.dts = ms  # in MS, every stream's time base (unset here: taken as it)
        duration = 0
        if kind == "video":
            out.is_keyframe = size is not None
        else:
            out.is_keyframe = True
            duration = round(opus_packet_ms(data) or 0)
            if duration:
                out.duration = duration
        stats = track.stats
        stats.packets += 1
        stats.bytes += len(data)
        if stats.first_ms is None:
            stats.first_ms = ms
        stats.end_ms = ms + duration
        if not self.started:
            self._pending.append(_Pending(track, out))
            if self._ready(ms):
                self._start()
            return not self._failed
        return self._mux(track, out)

    def resync(self, party: Party, kind: Kind) -> None:
        """The track's source changed (a party reconnected): wait for a key frame, re-anchor."""
        track = self._tracks[party, kind]
        track.waiting_for_keyframe = kind == "video"
        track.clock.reset()

    def _ready(self, ms: int) -> bool:
        videos = [t for t in self._tracks.values() if t.stats.kind == "video"]
        if all(t.stats.width for t in videos):
            return True
        return ms - (self._pending[0].packet.pts or 0) >= self.options.header_wait_s * 1000

    def _start(self) -> None:
        """Create the four streams (sizes now known) and write the header and the backlog."""
        try:
            self._add_streams()
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._failed = f"cannot start the file: {exc}"
            log.error("call %s: recording not started: %s", self.call_id, exc)
            return
        self.started = True
        pending, self._pending = self._pending, []
        for item in pending:
            self._mux(item.track, item.packet)

    def _add_streams(self) -> None:
        scratch = av.open(io.BytesIO(), "w", format="webm")  # never written
        try:
            template = scratch.add_stream("libopus", rate=48000)  # parameters only, never opened
            for track in self._tracks.values():
                party, kind = track.key
                if kind == "video":
                    width = track.stats.width or self.options.default_size[0]
                    height = track.stats.height or self.options.default_size[1]
                    stream = self._container.add_mux_stream(
                        "vp8", width=width, height=height, time_base=MS
                    )
                else:
                    stream = self._container.add_stream_from_template(template)
                    stream.time_base = MS
                    stream.codec_context.extradata = opus_head()
                stream.metadata["title"] = f"{party} {kind}"
                track.stream = stream
        finally:
            scratch.close()

    def _mux(self, track: _Track, packet: av.Packet[Any]) -> bool:
        assert track.stream is not None
        packet.stream = track.stream
        try:
            self._container.mux_one(packet)
        except av.FFmpegError as exc:  # a frame the muxer refuses: skip it, keep recording
            track.stats.errors += 1
            if track.stats.errors == 1:
                log.warning("call %s: %s %s frame not muxed: %s", self.call_id, *track.key, exc)
            return False
        except OSError as exc:  # the file cannot be written: stop, keep what is on disk
            self._failed = f"write failed: {exc}"
            log.error("call %s: recording stopped: %s", self.call_id, exc)
            return False
        return True

    # ------------------------------------------------------------------ closing

    @property
    def backlog_s(self) -> float:
        """How long the oldest write not yet on disk has waited (see :class:`Spool`)."""
        return self._file.backlog_s

    @property
    def pending_writes(self) -> int:
        return self._file.pending

    @property
    def stats(self) -> RecordingStats:
        return RecordingStats(self.call_id, [t.stats for t in self._tracks.values()], self._failed)

    def close(self) -> RecordingStats:
        """Write the backlog and the trailer (duration, cues) and close the file. Idempotent."""
        if not self.closed:
            self.closed = True
            try:
                if not self.started and self._pending and not self._failed:
                    self._start()
                self._container.close()
            except (av.FFmpegError, OSError) as exc:
                if self._file.error is not None:  # a write the spool's thread could not make
                    self._failed = self._failed or f"write failed: {self._file.error}"
                self._close_failed(exc)
            finally:
                try:
                    self._file.close()  # (object storage: uploads what is left)
                except OSError as exc:
                    self._close_failed(exc)
        return self.stats

    def _close_failed(self, exc: Exception) -> None:
        self._failed = self._failed or f"close failed: {exc}"
        log.error("call %s: recording not closed cleanly: %s", self.call_id, exc)
