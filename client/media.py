"""Client-side media: a cheap pre-encoded VP8/Opus source and counting/decoding sinks.

The clip (solid background of a configurable colour, a moving marker, a frame
counter; a sine tone) is encoded ONCE per :class:`ClipSpec` and cached in memory
and on disk, then looped by :class:`PreEncodedVideoTrack` / :class:`PreEncodedAudioTrack`
as :class:`av.Packet` with real-time pacing. aiortc's sender only packetizes them
(``Vp8Encoder.pack``), so a simulated client costs almost no CPU. Send them through
:class:`media.passthrough.PassthroughSender` (e.g. ``PassthroughPeerConnection``) so
that upstream PLI makes the source jump to its next keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import os
import struct
import tempfile
import time
from collections import Counter
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, Final

import av
import cv2
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.codeccontext import VideoCodecContext

from media.passthrough import is_vp8_keyframe

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


class _PacedTrack(MediaStreamTrack):
    """Loops pre-encoded frames with real-time pacing."""

    def __init__(self, kind: str, frames: list[bytes], rate: int, clock_rate: int) -> None:
        super().__init__()
        self.kind = kind
        self._frames = frames
        self._period = 1.0 / rate
        self._step = clock_rate // rate
        self._time_base = fractions.Fraction(1, clock_rate)
        self._start: float | None = None
        self._count = 0  # frames emitted (drives pts and pacing)
        self._index = 0  # position in the clip
        self.bytes_sent = 0

    def _next_index(self) -> int:
        index = self._index
        self._index = (index + 1) % len(self._frames)
        return index

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None or now - (self._start + self._count * self._period) > 1.0:
            self._start = now - self._count * self._period  # (re)anchor after stalls
        delay = self._start + self._count * self._period - now
        if delay > 0:
            await asyncio.sleep(delay)
        data = self._frames[self._next_index()]
        packet = av.Packet(data)
        packet.pts = packet.dts = self._count * self._step
        packet.time_base = self._time_base
        packet.is_keyframe = self.kind == "audio" or is_vp8_keyframe(data)
        self._count += 1
        self.bytes_sent += len(data)
        return packet


class PreEncodedVideoTrack(_PacedTrack):
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


class PreEncodedAudioTrack(_PacedTrack):
    def __init__(self, clip: EncodedClip) -> None:
        super().__init__("audio", clip.audio, 50, AUDIO_TIME_BASE.denominator)  # 20 ms frames


class ClipSource:
    """Audio + video tracks looping one cached clip."""

    def __init__(self, spec: ClipSpec | None = None) -> None:
        self.clip = load_clip(spec or ClipSpec())
        self.video = PreEncodedVideoTrack(self.clip)
        self.audio = PreEncodedAudioTrack(self.clip)

    def stop(self) -> None:
        self.video.stop()
        self.audio.stop()


def dominant_colour(image: RgbImage) -> str:
    """Palette name nearest to the image's median colour (robust to marker/text)."""
    median = np.median(image[::8, ::8].reshape(-1, 3), axis=0)
    return min(COLOURS, key=lambda n: float(np.sum((median - np.array(COLOURS[n])) ** 2)))


class MediaSink:
    """Consumes a received track: counts frames/bytes, optionally checks colour.

    Works with decoded frames (a normal aiortc receiver) and with encoded
    ``av.Packet`` (a pass-through receiver; decoded here only if ``decode``).
    """

    def __init__(
        self, track: MediaStreamTrack, *, decode: bool = True, colour_every: int = 5
    ) -> None:
        self.track = track
        self.kind = track.kind
        self.decode = decode
        self.colour_every = max(1, colour_every)
        self.frames = 0
        self.bytes = 0
        self.keyframes = 0
        self.decoded = 0
        self.colours: Counter[str] = Counter()
        self.first_frame = asyncio.Event()
        self.first_decoded = asyncio.Event()
        self.first_decoded_at: float | None = None
        self._progress = asyncio.Event()
        self._decoder: VideoCodecContext | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> MediaSink:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            while True:
                item = await self.track.recv()
                self.frames += 1
                self.first_frame.set()
                self._progress.set()
                if isinstance(item, av.Packet):
                    self.bytes += item.size
                    self.keyframes += bool(item.is_keyframe)
                    if self.decode and self.kind == "video":
                        for frame in self._decode(item):
                            self._on_video_frame(frame)
                elif isinstance(item, av.VideoFrame):
                    self._on_video_frame(item)
        except MediaStreamError:
            pass
        finally:
            self._progress.set()

    def _decode(self, packet: av.Packet[Any]) -> list[av.VideoFrame]:
        if self._decoder is None:
            if not packet.is_keyframe:
                return []
            self._decoder = av.CodecContext.create("libvpx", "r")
        try:
            return [f for f in self._decoder.decode(packet) if isinstance(f, av.VideoFrame)]
        except av.FFmpegError:
            return []

    async def wait_for(self, *, frames: int = 0, decoded: int = 0, keyframes: int = 0) -> None:
        """Wait until at least this many frames / decoded frames / keyframes arrived."""
        while self.frames < frames or self.decoded < decoded or self.keyframes < keyframes:
            if self._task is not None and self._task.done():
                raise MediaStreamError(f"{self.kind} track ended")
            self._progress.clear()
            await self._progress.wait()

    def _on_video_frame(self, frame: av.VideoFrame) -> None:
        self.decoded += 1
        self._progress.set()
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
