"""Client-side media at RTP level: a pre-encoded VP8/Opus source and counting sinks.

The clip (:mod:`client.clip`) is encoded once per :class:`ClipSpec` and cached. A
:class:`ClipStream` loops it into a :class:`rtpkit.endpoints.ForwardingSender` as RTP (VP8
packetized on the fly, Opus one frame per packet) with timestamps advancing in real time; one
:class:`Pacer` per event loop drives every stream from a single timer, so hundreds of
simulated clients cost little CPU. A PLI from the SFU makes the video jump to the clip's next
key frame.

:class:`RtpSink` counts what a :class:`rtpkit.endpoints.ForwardingReceiver` hands it: packets,
losses (sequence gaps), whole frames and key frames (reassembled, see
:class:`rtpkit.rtp.FrameAssembler`), and decodes all frames, only key frames (a cheap content
check for load tests) or none.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from typing import ClassVar, Final

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from client.clip import (
    AUDIO_TIME_BASE,
    COLOURS,
    VIDEO_TIME_BASE,
    ClipSpec,
    EncodedClip,
    dominant_colour,
    load_clip,
)
from rtpkit.endpoints import ForwardingSender
from rtpkit.latency import DelayHistogram
from rtpkit.rtp import Frame, FrameAssembler, RtpIn, seq_delta, vp8_payloads

__all__ = [
    "AUDIO_TIME_BASE",
    "COLOURS",
    "VIDEO_TIME_BASE",
    "ClipAudio",
    "ClipSource",
    "ClipSpec",
    "ClipStream",
    "ClipVideo",
    "EncodedClip",
    "Pacer",
    "RtpSink",
    "dominant_colour",
    "load_clip",
]


class ClipStream:
    """Loops one kind of a clip into a sender in real time (driven by the :class:`Pacer`)."""

    def __init__(self, kind: str, frames: list[bytes], rate: int, clock_rate: int) -> None:
        self.kind = kind
        self._frames = frames
        self._period = 1.0 / rate
        self._step = clock_rate // rate
        self._start: float | None = None
        self._count = 0  # frames due so far (drives timestamps and pacing)
        self._index = 0  # position in the clip
        self._picture_id = random.randrange(0, 0x8000)
        self._sender: ForwardingSender | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self.stopped = False
        self.next_due = 0.0  # when its next frame is due (the pacer skips it until then)
        self.lateness: DelayHistogram | None = None  # set by the pacer: how late frames go

    def attach(self, sender: ForwardingSender) -> None:
        self._sender = sender
        if self.kind == "video":
            sender.on_keyframe_request = self.request_keyframe
        Pacer.get().add(self)

    def stop(self) -> None:
        self.stopped = True
        Pacer.discard(self)

    def request_keyframe(self) -> None:
        """Only video has key frames to jump to."""

    def _next_index(self) -> int:
        index = self._index
        self._index = (index + 1) % len(self._frames)
        return index

    def tick(self, now: float) -> None:
        """Send every frame that is due at ``now`` (re-anchors after a stall > 1 s)."""
        if self._start is None or now - (self._start + self._count * self._period) > 1.0:
            self._start = now - self._count * self._period
        lateness = self.lateness
        while (due := self._start + self._count * self._period) <= now:
            if lateness is not None:
                lateness.record(now - due)
            data = self._frames[self._next_index()]
            timestamp = self._count * self._step
            self._count += 1
            if self.kind == "video":
                self._picture_id = (self._picture_id + 1) & 0x7FFF
                payloads = vp8_payloads(data, self._picture_id)
            else:
                payloads = [data]
            sender = self._sender
            if sender is not None and sender.stopped:
                self.stopped = True  # its connection is closed: leave the pacer
                return
            if sender is not None and sender.send_frame(payloads, timestamp):
                self.frames_sent += 1
                self.bytes_sent += len(data)
        self.next_due = self._start + self._count * self._period


class ClipVideo(ClipStream):
    def __init__(self, clip: EncodedClip) -> None:
        super().__init__("video", clip.video, clip.spec.fps, VIDEO_TIME_BASE.denominator)
        self._keyframes = clip.keyframes
        self._jump = False
        self.keyframe_requests = 0

    def request_keyframe(self) -> None:
        """Upstream PLI: continue from the clip's next keyframe at the next frame."""
        self.keyframe_requests += 1
        self._jump = True

    def _next_index(self) -> int:
        if self._jump:
            self._jump = False
            later = [k for k in self._keyframes if k >= self._index]
            self._index = later[0] if later else self._keyframes[0]
        return super()._next_index()


class ClipAudio(ClipStream):
    def __init__(self, clip: EncodedClip) -> None:
        super().__init__("audio", clip.audio, 50, AUDIO_TIME_BASE.denominator)  # 20 ms frames


class ClipSource:
    """Audio + video streams looping one cached clip."""

    def __init__(self, spec: ClipSpec | None = None) -> None:
        self.clip = load_clip(spec or ClipSpec())
        self.video = ClipVideo(self.clip)
        self.audio = ClipAudio(self.clip)

    def stream(self, kind: str) -> ClipStream:
        return self.video if kind == "video" else self.audio

    def stop(self) -> None:
        self.video.stop()
        self.audio.stop()


class Pacer:
    """One timer per event loop that sends every due frame of every :class:`ClipStream`.

    It measures how well the loop keeps up: ``loop_lag`` (how late each tick ran) and
    ``lateness`` (how late each frame was sent after it was due)."""

    TICK_S: Final = 0.005
    _instances: ClassVar[dict[asyncio.AbstractEventLoop, Pacer]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._streams: list[ClipStream] = []
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the pending tick should run
        self.loop_lag = DelayHistogram()
        self.lateness = DelayHistogram()

    @classmethod
    def get(cls) -> Pacer:
        loop = asyncio.get_running_loop()
        pacer = cls._instances.get(loop)
        if pacer is None:
            for old in [lp for lp in cls._instances if lp.is_closed()]:
                del cls._instances[old]
            pacer = cls._instances[loop] = cls(loop)
        return pacer

    @classmethod
    def discard(cls, stream: ClipStream) -> None:
        for pacer in cls._instances.values():
            if stream in pacer._streams:
                pacer._streams.remove(stream)

    def add(self, stream: ClipStream) -> None:
        if stream not in self._streams:
            stream.lateness = self.lateness
            self._streams.append(stream)
        if self._handle is None:
            self._schedule(time.monotonic())

    def _schedule(self, now: float) -> None:
        self._due = now + self.TICK_S
        self._handle = self._loop.call_later(self.TICK_S, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.loop_lag.record(now - self._due)
        if any(s.stopped for s in self._streams):
            self._streams = [s for s in self._streams if not s.stopped]
        for stream in self._streams:
            if stream.next_due > now:
                continue
            try:
                stream.tick(now)
            except Exception:  # one broken stream must not stop the others
                stream.stopped = True
        if self._streams:
            self._schedule(now)
        else:
            self._handle = None


class RtpSink:
    """Counts (and optionally decodes) one received stream; fed by ``on_packet``.

    ``decode``: ``"all"`` decodes every frame (and samples colours every ``colour_every``),
    ``"keyframes"`` one key frame every ``sample_every_s`` at most (self-contained: a cheap
    content check), ``"none"``.
    """

    def __init__(
        self,
        kind: str,
        *,
        decode: str = "all",
        colour_every: int = 5,
        sample_every_s: float = 5.0,
    ) -> None:
        if decode not in ("all", "keyframes", "none"):
            raise ValueError(f"decode must be all, keyframes or none, not {decode!r}")
        self.kind = kind
        self.decode = decode if kind == "video" else "none"
        self.colour_every = max(1, colour_every)
        self.sample_every_s = sample_every_s
        self._sampled_at = -math.inf
        self.packets = 0
        self.bytes = 0
        self.decoded = 0
        self.colours: Counter[str] = Counter()
        self.first_frame = asyncio.Event()
        self.first_decoded = asyncio.Event()
        self.first_decoded_at: float | None = None
        self.first_at: float | None = None  # first packet
        self._assembler = FrameAssembler(kind == "video")
        self._progress = asyncio.Event()
        self._decoder: VideoCodecContext | None = None
        self._base_seq: int | None = None
        self._max_seq = 0  # extended
        self.closed = False

    @property
    def frames(self) -> int:
        return self._assembler.frames

    @property
    def keyframes(self) -> int:
        return self._assembler.keyframes

    @property
    def lost(self) -> int:
        """Packets never received (sequence gaps not filled by retransmission)."""
        if self._base_seq is None:
            return 0
        return max(0, self._max_seq - self._base_seq + 1 - self.packets)

    def on_packet(self, packet: RtpIn, keyframe_start: bool, arrival: float) -> None:
        seq = packet.sequence_number
        if self.first_at is None:
            self.first_at = arrival
        if self._base_seq is None:
            self._base_seq = self._max_seq = seq
        else:
            delta = seq_delta(seq, self._max_seq & 0xFFFF)
            if delta > 0:
                self._max_seq += delta
        self.packets += 1
        self.bytes += len(packet.payload)
        for frame in self._assembler.push(
            seq, packet.timestamp, bool(packet.marker), packet.payload, arrival
        ):
            self._frame_ready(frame, arrival)

    def _frame_ready(self, frame: Frame, arrival: float) -> None:
        self.first_frame.set()
        if self.decode == "all":
            self._decode(frame.data, frame.keyframe)
        elif self.decode == "keyframes" and frame.keyframe:
            if arrival - self._sampled_at >= self.sample_every_s:
                self._sampled_at = arrival
                self._decoder = None  # each sample on its own: no stale references
                self._decode(frame.data, frame.keyframe)
        self._progress.set()

    def _decode(self, data: bytes, keyframe: bool) -> None:
        if self._decoder is None:
            if not keyframe:
                return
            self._decoder = av.CodecContext.create("libvpx", "r")
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            return
        for frame in frames:
            if isinstance(frame, av.VideoFrame):
                self._on_video_frame(frame)

    def close(self) -> None:
        self.closed = True
        self._decoder = None  # release libvpx now, not whenever the peer is collected
        self._progress.set()

    async def wait_for(self, *, frames: int = 0, decoded: int = 0, keyframes: int = 0) -> None:
        """Wait until at least this many frames / decoded frames / keyframes arrived."""
        while self.frames < frames or self.decoded < decoded or self.keyframes < keyframes:
            if self.closed:
                raise ConnectionError(f"{self.kind} sink closed")
            self._progress.clear()
            await self._progress.wait()

    def _on_video_frame(self, frame: av.VideoFrame) -> None:
        self.decoded += 1
        if self.first_decoded_at is None:
            self.first_decoded_at = time.monotonic()
            self.first_decoded.set()
        if (self.decoded - 1) % self.colour_every == 0:
            rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            self.colours[dominant_colour(rgb)] += 1

    @property
    def main_colour(self) -> str | None:
        common = self.colours.most_common(1)
        return common[0][0] if common else None
