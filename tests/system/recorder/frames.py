"""Test input: the cached pre-encoded clips of client/media.py as one call's frame timeline."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from client.media import AUDIO_TIME_BASE, VIDEO_TIME_BASE, ClipSpec, EncodedClip, load_clip

SECONDS = 5.0
TABLET = ClipSpec(colour="red", width=320, height=180, duration_s=SECONDS)
FAMILY = ClipSpec(colour="blue", width=320, height=180, duration_s=SECONDS)


@dataclass(frozen=True)
class Frame:
    at: float  # media time, seconds
    party: Any  # recorder.muxer.Party
    kind: Any  # recorder.muxer.Kind
    data: bytes
    pts: int
    time_base: Fraction

    def packet(self) -> av.Packet[Any]:
        packet = av.Packet(self.data)
        packet.pts = packet.dts = self.pts
        packet.time_base = self.time_base
        return packet


def clips() -> tuple[EncodedClip, EncodedClip]:
    return load_clip(TABLET), load_clip(FAMILY)


def call_frames(seconds: float = SECONDS) -> list[Frame]:
    """Both parties' audio and video, in arrival (media time) order."""
    frames: list[Frame] = []
    for party, clip in zip(("tablet", "family"), clips(), strict=True):
        fps = clip.spec.fps
        for i, data in enumerate(clip.video):
            frames.append(Frame(i / fps, party, "video", data, i * 90000 // fps, VIDEO_TIME_BASE))
        for i, data in enumerate(clip.audio):
            frames.append(Frame(i * 0.02, party, "audio", data, i * 960, AUDIO_TIME_BASE))
    frames.sort(key=lambda f: f.at)
    return [f for f in frames if f.at < seconds]
