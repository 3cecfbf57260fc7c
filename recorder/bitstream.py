"""What the muxer needs to know about VP8 and Opus frames, read from their headers only.

Nothing here decodes media: a VP8 key frame carries its size in a fixed 10-byte header
(RFC 6386 §9.1), an Opus packet its duration in its TOC byte (RFC 6716 §3.1), and an Opus
track in Matroska/WebM needs an ``OpusHead`` as CodecPrivate (RFC 7845 §5.1).
"""

from __future__ import annotations

import struct
from typing import Final

from rtpkit.rtp import is_vp8_keyframe

OPUS_SAMPLE_RATE: Final = 48000
#: Frame sizes (in 1/10 ms) by TOC configuration number: SILK, Hybrid, CELT.
_OPUS_FRAME_TENTHS: Final = (
    *(100, 200, 400, 600) * 3,
    *(100, 200) * 2,
    *(25, 50, 100, 200) * 4,
)

__all__ = ["is_vp8_keyframe", "opus_head", "opus_packet_ms", "vp8_keyframe_size"]


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a VP8 key frame, or ``None`` for an inter frame / garbage."""
    if not is_vp8_keyframe(data):
        return None
    width, height = struct.unpack_from("<HH", data, 6)
    width, height = width & 0x3FFF, height & 0x3FFF  # top two bits are the scaling mode
    return (width, height) if width and height else None


def opus_packet_ms(data: bytes) -> float | None:
    """Duration of one Opus packet in milliseconds, or ``None`` if it is malformed."""
    if not data:
        return None
    toc = data[0]
    frame_tenths = _OPUS_FRAME_TENTHS[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(data) >= 2:
        frames = data[1] & 0x3F
    else:
        return None
    total = frames * frame_tenths
    return total / 10 if 0 < total <= 1200 else None


def opus_head(channels: int = 2, pre_skip: int = 0) -> bytes:
    """An ``OpusHead`` identification header (mapping family 0: mono or stereo).

    WebRTC negotiates ``opus/48000/2`` and may send mono or stereo frames; a 2-channel head
    lets every decoder play both. ``pre_skip`` 0 keeps the audio aligned with the call clock.
    """
    if channels not in (1, 2):
        raise ValueError("mapping family 0 carries 1 or 2 channels")
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, OPUS_SAMPLE_RATE, 0, 0)
