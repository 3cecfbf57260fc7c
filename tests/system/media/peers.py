"""Shared pieces for media tests: clips, configs, a connected-state wait, and a sink for
plain aiortc receivers (decoded frames), which checks that what the SFU sends is standard RTP
that aiortc's own jitter buffer and decoder accept."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import av
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from client.media import ClipSpec, dominant_colour
from client.peer import PartyPeer

# One keyframe per 4 s loop: a late viewer only gets one within 1 s through PLI.
RED = ClipSpec(colour="red", keyframe_interval_s=4.0, duration_s=4.0)
BLUE = ClipSpec(colour="blue", keyframe_interval_s=4.0, duration_s=4.0)


def config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


async def connected(pc: RTCPeerConnection) -> None:
    done = asyncio.Event()

    def check() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            done.set()

    pc.on("connectionstatechange", check)
    try:
        check()
        await asyncio.wait_for(done.wait(), 10)
    finally:
        pc.remove_listener("connectionstatechange", check)
    assert pc.connectionState == "connected"


class TrackSink:
    """Reads a plain aiortc track (decoded frames): counts them, samples colours (video) and
    the loudest frequency of each frame (audio: the clips are sine tones)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.colours: Counter[str] = Counter()
        self.tones: list[float] = []
        self.first_decoded = asyncio.Event()
        self.first_decoded_at: float | None = None
        self._progress = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await self.track.recv()
                self.frames += 1
                if isinstance(frame, av.VideoFrame):
                    if self.first_decoded_at is None:
                        self.first_decoded_at = time.monotonic()
                        self.first_decoded.set()
                    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    self.colours[dominant_colour(rgb)] += 1
                elif isinstance(frame, av.AudioFrame):
                    self.tones.append(loudest_hz(frame))
                self._progress.set()

    async def wait_for(self, frames: int) -> None:
        while self.frames < frames:
            if self._task.done():
                raise MediaStreamError("track ended")
            self._progress.clear()
            await self._progress.wait()

    @property
    def main_tone(self) -> float | None:
        """The median of the frames' loudest frequencies (Hz)."""
        return float(np.median(self.tones)) if self.tones else None

    @property
    def main_colour(self) -> str | None:
        common = self.colours.most_common(1)
        return common[0][0] if common else None

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def loudest_hz(frame: av.AudioFrame) -> float:
    """The strongest frequency of one decoded audio frame (its first channel)."""
    samples = np.asarray(frame.to_ndarray(), dtype=np.float64).reshape(-1)
    if frame.format.is_packed:
        samples = samples[:: len(frame.layout.channels)]
    else:
        samples = samples[: frame.samples]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum[1:]) + 1) * frame.sample_rate / len(samples)


async def see_each_other(tablet: PartyPeer, family: PartyPeer, decoded: int) -> None:
    """Each party decodes ``decoded`` frames of the other's colour and hears its audio."""
    await asyncio.wait_for(
        asyncio.gather(
            family.sinks["video"].wait_for(decoded=decoded),
            tablet.sinks["video"].wait_for(decoded=decoded),
            family.sinks["audio"].wait_for(frames=decoded),
            tablet.sinks["audio"].wait_for(frames=decoded),
        ),
        10,
    )
    assert set(family.sinks["video"].colours) == {tablet.source.clip.spec.colour}
    assert set(tablet.sinks["video"].colours) == {family.source.clip.spec.colour}
