"""The test and load clip: a pre-encoded VP8 + Opus clip, encoded once and cached.

A solid background of a configurable colour, a moving marker and a frame counter; a sine tone.
Each :class:`ClipSpec` is encoded ONCE (libvpx realtime, key frames where the spec says) and
cached in memory and on disk; :func:`dominant_colour` tells which clip a decoded picture shows.
"""

from __future__ import annotations

import fractions
import hashlib
import os
import struct
import tempfile
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Final

import av
import cv2
import numpy as np
import numpy.typing as npt

from rtpkit.rtp import is_vp8_keyframe

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


def dominant_colour(image: RgbImage) -> str:
    """Palette name nearest to the image's median colour (robust to marker/text)."""
    median = np.median(image[::8, ::8].reshape(-1, 3), axis=0)
    return min(COLOURS, key=lambda n: float(np.sum((median - np.array(COLOURS[n])) ** 2)))
