"""The muxer: both parties' VP8 + Opus in one WebM, on one clock, with no codec opened."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.codec.context import CodecContext

from client.media import ClipAudio, ClipStream, ClipVideo, dominant_colour
from recorder.muxer import CallRecording
from recorder.service import PrivilegedCallError
from recorder.tap import RecorderTap
from rtpkit.rtp import RtpIn, vp8_keyframe_start
from tests.system.recorder.conftest import write_call
from tests.system.recorder.frames import SECONDS, call_frames, clips

STREAMS = [("vp8", "tablet video"), ("opus", "tablet audio"), ("vp8", "family video"),
           ("opus", "family audio")]  # fmt: skip


def video_colours(path: Path, index: int) -> tuple[int, Counter[str]]:
    """Decode one video stream (in the test, never in the recorder): frames, colours."""
    colours: Counter[str] = Counter()
    decoded = 0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams[index]):
            if decoded % 10 == 0:
                assert isinstance(frame, av.VideoFrame)
                colours[dominant_colour(np.asarray(frame.to_ndarray(format="rgb24")))] += 1
            decoded += 1
    return decoded, colours


def packet_times(path: Path) -> dict[int, list[int]]:
    """Every packet's pts (ms) per stream, demuxed without decoding."""
    times: dict[int, list[int]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is not None:
                times.setdefault(packet.stream.index, []).append(packet.pts)
    return times


def test_both_parties_in_one_playable_webm(tmp_path: Path) -> None:
    path = tmp_path / "call.webm"
    recording = CallRecording.open(path, "C1")
    write_call(recording)
    stats = recording.stats
    with av.open(str(path)) as container:
        assert [(s.codec_context.name, s.metadata.get("title")) for s in container.streams] == (
            STREAMS
        )
        assert container.duration is not None
        assert abs(container.duration / 1e6 - SECONDS) < 1.0
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        opus = container.streams.audio[0]
        assert opus.codec_context.extradata is not None
        assert opus.codec_context.extradata[:8] == b"OpusHead"
        assert opus.codec_context.sample_rate == 48000
    tablet_clip, family_clip = clips()
    assert stats.packets == len(call_frames())
    assert abs(stats.duration_s - SECONDS) < 0.1
    for index, colour, clip in ((0, "red", tablet_clip), (2, "blue", family_clip)):
        decoded, colours = video_colours(path, index)
        assert decoded == len(clip.video)
        assert colours.most_common(1)[0][0] == colour and len(colours) == 1
    times = packet_times(path)
    for index in range(4):
        assert times[index] == sorted(times[index])
        assert abs(times[index][-1] / 1000 - SECONDS) < 0.1


def test_no_codec_context_is_ever_opened(tmp_path: Path) -> None:
    """Would fail if the recorder opened an encoder or decoder (e.g. ``add_stream("libvpx")``
    opens one when the header is written)."""

    def contexts() -> dict[int, CodecContext]:
        return {id(o): o for o in gc.get_objects() if isinstance(o, CodecContext)}

    before = contexts()
    recording = CallRecording.open(tmp_path / "call.webm", "C1")
    for frame in call_frames(2.0):
        recording.write(frame.party, frame.kind, frame.packet(), arrival=frame.at)
    assert recording.started
    during = {i: c for i, c in contexts().items() if i not in before}
    assert len(during) >= 2  # the scan sees the audio streams' parameter holders ...
    assert not [c for c in during.values() if c.is_open]  # ... and none of them was opened
    recording.close()


def test_video_waits_for_a_keyframe_and_header_waits_for_both_sizes(tmp_path: Path) -> None:
    path = tmp_path / "late.webm"
    recording = CallRecording.open(path, "C1")
    frames = call_frames()
    # The family's video is lost until its second key frame (2 s in).
    kept = [f for f in frames if not (f.party == "family" and f.kind == "video" and f.at < 1.9)]
    for frame in kept:
        recording.write(frame.party, frame.kind, frame.packet(), arrival=frame.at)
    stats = recording.close()
    family_video = stats.tracks[2]
    assert (family_video.width, family_video.height) == (320, 180)
    assert family_video.skipped == 3  # 1.9 s..2.0 s: inter frames, undecodable
    decoded, colours = video_colours(path, 2)
    assert decoded == family_video.packets > 0
    assert set(colours) == {"blue"}
    times = packet_times(path)
    assert times[2][0] == pytest.approx(2000, abs=5)  # on the call clock, not shifted to 0


def test_jitter_and_reconnect_keep_parties_in_sync(tmp_path: Path) -> None:
    """Arrival jitter up to 80 ms never shifts a frame by more than that; a party whose
    timestamps restart (reconnect) is re-anchored on its arrival time."""
    path = tmp_path / "jitter.webm"
    recording = CallRecording.open(path, "C1")
    rng = random.Random(7)
    expected: dict[tuple[str, str], list[float]] = {}
    for frame in call_frames():
        packet = frame.packet()
        if frame.party == "family" and frame.at >= 3.0:  # family reconnected: pts from 0
            if frame.kind == "video" and 2.99 < frame.at < 3.01:
                recording.resync("family", "video")
            packet.pts = packet.dts = frame.pts - round(3.0 / frame.time_base)
        arrival = frame.at + rng.uniform(0, 0.08)
        if recording.write(frame.party, frame.kind, packet, arrival=arrival):
            expected.setdefault((frame.party, frame.kind), []).append(frame.at * 1000)
    stats = recording.close()
    times = packet_times(path)
    for index, track in enumerate(stats.tracks):
        got = times[index]
        want = expected[track.party, track.kind]
        errors = [abs(g - w) for g, w in zip(got, want, strict=True)]
        assert max(errors) <= 85, (track.party, track.kind, max(errors))


class ClipPublisher:
    """Plays a clip stream as RTP packets into taps in real time, as a room's publisher does
    (the clip stream treats it as its sender); ends after ``frames`` frames."""

    def __init__(self, stream: ClipStream, frames: int) -> None:
        self.kind = stream.kind
        self.stopped = False
        self.on_keyframe_request: Callable[[], None] | None = None
        self.done = asyncio.Event()
        self._stream, self._left, self._seq = stream, frames, random.randrange(0, 0xFFFF)
        self._taps: list[Callable[[RtpIn, bool, float], None]] = []
        stream.attach(self)  # type: ignore[arg-type]

    def send_frame(self, payloads: list[bytes], timestamp: int) -> bool:
        if self._left <= 0:
            self.done.set()
            self._stream.stop()
            return False
        self._left -= 1
        now = time.monotonic()
        for i, payload in enumerate(payloads):
            marker = int(i == len(payloads) - 1)
            packet = RtpIn(96, marker, self._seq & 0xFFFF, timestamp & 0xFFFFFFFF, 1, payload)
            self._seq += 1
            start = self.kind == "video" and vp8_keyframe_start(payload)
            for tap in self._taps:
                tap(packet, start, now)
        return True

    def add_tap(self, tap: Callable[[RtpIn, bool, float], None]) -> Callable[[], None]:
        self._taps.append(tap)
        return lambda: self._taps.remove(tap)

    def request_keyframe(self) -> None:
        if self.on_keyframe_request is not None:
            self.on_keyframe_request()


class _Room:
    def __init__(self, publishers: dict[tuple[str, str], ClipPublisher], privileged: bool):
        self.call_id, self.privileged, self._publishers = "C1", privileged, publishers
        self.listeners: list[Any] = []

    def publisher(self, party: str, kind: str) -> ClipPublisher | None:
        return self._publishers.get((party, kind))

    def add_publisher_listener(self, listener: Any) -> None:
        self.listeners.append(listener)


async def test_recorder_tap_records_a_room_from_its_publishers(tmp_path: Path) -> None:
    """RTP packets of real-time paced clips, as the SFU's publishers hand them over."""
    publishers: dict[tuple[str, str], ClipPublisher] = {}
    for party, clip in zip(("tablet", "family"), clips(), strict=True):
        publishers[party, "video"] = ClipPublisher(ClipVideo(clip), 45)
        publishers[party, "audio"] = ClipPublisher(ClipAudio(clip), 75)
    sources = list(publishers.values())
    privileged = CallRecording.open(tmp_path / "p.webm", "P")
    with pytest.raises(PrivilegedCallError):
        RecorderTap.for_room(_Room(publishers, privileged=True), privileged)
    path = tmp_path / "room.webm"
    tap = RecorderTap.for_room(_Room(publishers, privileged=False), CallRecording.open(path, "C1"))
    await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in sources)), 10)
    stats = await tap.aclose()
    assert [t.packets > 0 for t in stats.tracks] == [True] * 4
    assert 1.0 < stats.duration_s < 3.0  # 1.5 s of media, minus the start, plus any stall
    for index, colour in ((0, "red"), (2, "blue")):
        decoded, colours = video_colours(path, index)
        assert decoded > 20 and set(colours) == {colour}


class StalledDisk:
    """A recording file whose writes block until ``release`` (a stalled disk)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("xb", buffering=0)
        self.release = threading.Event()
        self.blocked = threading.Event()

    def write(self, data: bytes) -> int:
        self.blocked.set()
        self.release.wait(30)
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


async def test_a_stalled_disk_never_holds_up_forwarding(tmp_path: Path) -> None:
    """Packets keep flowing through the publishers while every write waits; the backlog is
    bounded (what falls past it is counted); once the disk is back the file is whole."""
    disk = StalledDisk(tmp_path / "slow.webm")
    publishers: dict[tuple[str, str], ClipPublisher] = {}
    for party, clip in zip(("tablet", "family"), clips(), strict=True):
        publishers[party, "video"] = ClipPublisher(ClipVideo(clip), 45)
        publishers[party, "audio"] = ClipPublisher(ClipAudio(clip), 75)
    recording = CallRecording.open(disk, "S1")  # type: ignore[arg-type]
    tap = RecorderTap.for_room(_Room(publishers, privileged=False), recording, max_backlog_s=0.5)
    # Every publisher hands all its packets to the tap while the disk is still stalled:
    # nothing on the forwarding side waited for a write.
    await asyncio.wait_for(asyncio.gather(*(p.done.wait() for p in publishers.values())), 10)
    assert disk.blocked.is_set() and not disk.release.is_set()
    assert tap.stats()["pending_writes"] > 0
    assert tap.dropped > 0  # more than max_backlog_s of media waited: the rest was dropped
    disk.release.set()
    stats = await tap.aclose()
    assert stats.failed is None and all(t.packets > 0 for t in stats.tracks)
    decoded, colours = video_colours(tmp_path / "slow.webm", 0)
    assert decoded > 0 and set(colours) == {"red"}
