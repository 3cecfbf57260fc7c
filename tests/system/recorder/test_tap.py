"""RecorderTap on the loop: a re-offered track, and a recorder bug that must not touch the call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.recorder_handoff import Item, call_packets
from recorder import CallRecording, RecorderTap
from rtpkit.rtp import RtpIn
from tests.waiting import eventually

Tap = Callable[[Any, bool, float], None]


class Publisher:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.taps: list[Tap] = []
        self.keyframe_requests = 0

    def add_tap(self, tap: Tap) -> Callable[[], None]:
        self.taps.append(tap)
        return lambda: self.taps.remove(tap)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def send(self, item: Item, packet: RtpIn | None = None) -> None:
        for tap in list(self.taps):
            tap(packet or item.packet, item.keyframe_start, 1000.0 + item.at)


class Room:
    def __init__(self) -> None:
        self.call_id, self.privileged = "T1", False
        self.publishers = {
            (p, k): Publisher(k) for p in ("tablet", "family") for k in ("audio", "video")
        }
        self.listeners: list[Callable[[Any, Any], None]] = []

    def publisher(self, party: str, kind: str) -> Publisher | None:
        return self.publishers.get((party, kind))

    def add_publisher_listener(self, listener: Callable[[Any, Any], None]) -> None:
        self.listeners.append(listener)

    def send(self, item: Item) -> None:
        self.publishers[item.party, item.kind].send(item)


async def test_a_re_offered_track_is_recorded_from_its_new_source(tmp_path: Path) -> None:
    """The family re-offers at 2 s: a new publisher whose RTP starts over (new sequence
    numbers and timestamps, a key frame first). The tap follows it into the same track."""
    packets = call_packets(4.0)
    room = Room()
    tap = RecorderTap.for_room(room, CallRecording.open(tmp_path / "t.webm", "T1"))
    for item in packets:
        if item.at < 2.0:
            room.send(item)
    old_family_video = room.publishers["family", "video"]
    new_family_video = Publisher("video")
    room.publishers["family", "video"] = new_family_video
    for listener in room.listeners:
        listener("family", new_family_video)
    assert old_family_video.taps == [] and len(new_family_video.taps) == 1
    assert new_family_video.keyframe_requests == 1  # the new source is asked for a key frame
    restart = [i for i in packets if (i.party, i.kind) == ("family", "video") and i.at < 2.0]
    for item in packets:
        if item.at >= 2.0 and (item.party, item.kind) != ("family", "video"):
            room.send(item)
    for n, item in enumerate(restart):  # the new source: its clip from the start, 2 s later
        p = item.packet
        packet = RtpIn(
            p.payload_type, p.marker, (7000 + n) & 0xFFFF, p.timestamp + 123456, 9, p.payload
        )
        new_family_video.send(
            Item(item.party, item.kind, packet, item.keyframe_start, item.at + 2.0), packet
        )
    stats = await tap.aclose()
    assert tap.problems() == ()
    tracks = {(t.party, t.kind): t for t in stats.tracks}
    # Both halves are in the family's video: 4 s at 30 fps (the first key frame comes at once).
    assert tracks["family", "video"].packets == 120
    assert tracks["family", "video"].first_ms == 0 and tracks["family", "video"].end_ms > 3900
    # The tablet's first key frame came before the family was heard: it starts at its next.
    assert tracks["tablet", "video"].packets == 60


class BrokenRecording(CallRecording):
    """A recording with a bug: its third frame raises."""

    def write_frame(self, *args: Any, **kwargs: Any) -> bool:
        if self.stats.packets >= 2:
            raise RuntimeError("a recorder bug")
        return super().write_frame(*args, **kwargs)


async def test_a_recorder_bug_stops_the_recording_and_nothing_else(tmp_path: Path) -> None:
    room = Room()
    recording = BrokenRecording.open(tmp_path / "b.webm", "B1")
    assert isinstance(recording, BrokenRecording)
    tap = RecorderTap.for_room(room, recording, flush_interval_s=0.01)
    packets = call_packets(1.0)
    for item in packets[: len(packets) // 2]:
        room.send(item)  # raising here would reach the forwarding loop: it must not
    await eventually(lambda: tap.closed, "the tap stopped after the bug")
    assert all(p.taps == [] for p in room.publishers.values())  # detached from every track
    for item in packets[len(packets) // 2 :]:
        room.send(item)  # the call goes on; nothing reaches the recording any more
    await tap.aclose()
    assert tap.problems() == ("the recorder failed: RuntimeError('a recorder bug')",)
    assert recording.stats.packets == 2
