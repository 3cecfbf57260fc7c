"""Client-side media at RTP level: a pre-encoded VP8/Opus source and counting sinks.

The clip (solid background of a configurable colour, a moving marker, a frame counter; a sine
tone) is encoded ONCE per :class:`ClipSpec` and cached in memory and on disk. A
:class:`ClipStream` loops it into a :class:`media.endpoints.ForwardingSender` as RTP (VP8
packetized on the fly, Opus one frame per packet) with timestamps advancing in real time; one
:class:`Pacer` per event loop drives every stream from a single timer, so hundreds of
simulated clients cost little CPU. A PLI from the SFU makes the video jump to the clip's next
key frame.

:class:`RtpSink` counts what a :class:`media.endpoints.ForwardingReceiver` hands it: packets,
losses (sequence gaps), whole frames and key frames (reassembled, see
:class:`media.rtp.FrameAssembler`), and decodes all frames, only key frames (a cheap content
check for load tests) or none.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import math
import os
import random
import struct
import tempfile
import time
from collections import Counter
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import ClassVar, Final

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.codeccontext import VideoCodecContext

from media.endpoints import ForwardingSender
from media.rtp import FrameAssembler, RtpIn, is_vp8_keyframe, seq_delta, vp8_payloads

VIDEO_TIME_BASE: Final = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE: Final = fractions.Fraction(1, 48000)
AUDIO_SAMPLES: Final = 960  # 20 ms at 48 kHz
CACHE_FORMAT: Final = b"VISCLIP1"

COLOURS: Final[dict[str, tuple[int, int, int]]] = {  # RGB
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 220, 30),
    "cyan": (30, 210, 220),
    "magenta": (210, 30, 210),
    "white": (240, 240, 240),
    "black": (10, 10, 10),
    "grey": (128, 128, 128),
}

RgbImage = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ClipSpec:
    colour: str = "red"
    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate: int = 500_000
    keyframe_interval_s: float = 2.0
    duration_s: float = 4.0
    tone_hz: float = 440.0
    audio_bitrate: int = 32_000

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLOURS[self.colour]

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration_s * self.fps))

    @property
    def gop(self) -> int:
        return max(1, round(self.keyframe_interval_s * self.fps))

    def cache_key(self) -> str:
        raw = repr((CACHE_FORMAT, astuple(self), av.__version__)).encode()
        return hashlib.sha256(raw).hexdigest()[:24]


@dataclass
class EncodedClip:
    spec: ClipSpec
    video: list[bytes]
    audio: list[bytes]
    keyframes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.keyframes:
            self.keyframes = [i for i, data in enumerate(self.video) if is_vp8_keyframe(data)]
        if not self.keyframes or self.keyframes[0] != 0:
            raise ValueError("clip must start with a VP8 keyframe")


def render_frame(spec: ClipSpec, index: int) -> RgbImage:
    """Solid background, a white marker moving left to right, and the frame counter."""
    # Low-amplitude noise keeps the VP8 bitrate realistic (a flat field costs ~nothing).
    noise = np.random.default_rng(index).integers(-16, 17, (spec.height, spec.width, 1))
    image: RgbImage = np.clip(np.asarray(spec.rgb, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    radius = max(4, spec.height // 12)
    span = spec.width - 2 * radius
    x = radius + (index * span) // max(1, spec.frame_count - 1)
    cv2.circle(image, (x, spec.height // 2), radius, (255, 255, 255), -1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, f"{index:05d}", (8, spec.height - 12), font, 1.0, (255, 255, 255), 2)
    return image


def _encode_video(spec: ClipSpec) -> list[bytes]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = spec.width
    codec.height = spec.height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, spec.fps)
    codec.framerate = fractions.Fraction(spec.fps, 1)
    codec.bit_rate = spec.bitrate
    codec.gop_size = spec.frame_count * 10  # keyframes are forced below instead
    realtime = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0"}
    codec.options = realtime | {k: str(spec.bitrate) for k in ("minrate", "maxrate", "bufsize")}
    out: list[bytes] = []
    for index in range(spec.frame_count):
        frame = av.VideoFrame.from_ndarray(render_frame(spec, index), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = codec.time_base
        if index % spec.gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out.extend(bytes(p) for p in codec.encode(frame))
    out.extend(bytes(p) for p in codec.encode(None))
    if len(out) != spec.frame_count:
        raise RuntimeError(f"libvpx returned {len(out)} packets for {spec.frame_count} frames")
    return out


def _encode_audio(spec: ClipSpec) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = spec.audio_bitrate
    codec.time_base = AUDIO_TIME_BASE
    codec.options = {"application": "voip"}
    count = max(1, round(spec.duration_s / 0.020))
    t = np.arange(count * AUDIO_SAMPLES) / 48000.0
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * spec.tone_hz * t)).astype(np.int16)
    out: list[bytes] = []
    for index in range(count):
        chunk = pcm[index * AUDIO_SAMPLES : (index + 1) * AUDIO_SAMPLES].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = index * AUDIO_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        out.extend(bytes(p) for p in codec.encode(frame))
    out.extend(bytes(p) for p in codec.encode(None))
    return out


def _write_records(path: Path, video: list[bytes], audio: list[bytes]) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(CACHE_FORMAT + struct.pack("!II", len(video), len(audio)))
        for data in (*video, *audio):
            fh.write(struct.pack("!I", len(data)) + data)
    os.replace(tmp, path)


def _read_records(path: Path) -> tuple[list[bytes], list[bytes]]:
    raw = path.read_bytes()
    if raw[:8] != CACHE_FORMAT:
        raise ValueError("bad clip cache header")
    n_video, n_audio = struct.unpack_from("!II", raw, 8)
    pos, records = 16, []
    for _ in range(n_video + n_audio):
        (size,) = struct.unpack_from("!I", raw, pos)
        records.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    if pos != len(raw):
        raise ValueError("truncated clip cache")
    return records[:n_video], records[n_video:]


def cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"visitation-media-cache-{os.getuid()}"
    return Path(os.environ.get("VISITATION_MEDIA_CACHE", default))


_clips: dict[ClipSpec, EncodedClip] = {}


def load_clip(spec: ClipSpec, *, use_disk: bool = True) -> EncodedClip:
    """The encoded clip for ``spec``: memory cache, then disk cache, else encode once."""
    clip = _clips.get(spec)
    if clip is not None:
        return clip
    path = cache_dir() / f"clip-{spec.cache_key()}.bin"
    if use_disk and path.exists():
        try:
            clip = EncodedClip(spec, *_read_records(path))
        except (OSError, ValueError, struct.error):
            clip = None
    if clip is None:
        clip = EncodedClip(spec, _encode_video(spec), _encode_audio(spec))
        if use_disk:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_records(path, clip.video, clip.audio)
            except OSError:
                pass
    _clips[spec] = clip
    return clip


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
        while self._start + self._count * self._period <= now:
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
    """One timer per event loop that sends every due frame of every :class:`ClipStream`."""

    TICK_S: Final = 0.005
    _instances: ClassVar[dict[asyncio.AbstractEventLoop, Pacer]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._streams: list[ClipStream] = []
        self._handle: asyncio.TimerHandle | None = None

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
            self._streams.append(stream)
        if self._handle is None:
            self._handle = self._loop.call_later(self.TICK_S, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self._streams = [s for s in self._streams if not s.stopped]
        for stream in self._streams:
            try:
                stream.tick(now)
            except Exception:  # one broken stream must not stop the others
                stream.stopped = True
        self._handle = self._loop.call_later(self.TICK_S, self._tick) if self._streams else None


def dominant_colour(image: RgbImage) -> str:
    """Palette name nearest to the image's median colour (robust to marker/text)."""
    median = np.median(image[::8, ::8].reshape(-1, 3), axis=0)
    return min(COLOURS, key=lambda n: float(np.sum((median - np.array(COLOURS[n])) ** 2)))


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
