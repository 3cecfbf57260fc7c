"""Feeds a call's four publishers (the SFU room's encoded tracks) into a :class:`CallRecording`.

Uses the publishers' synchronous taps (``EncodedPublisher.add_tap``): every encoded frame is
handed over in the event loop as it arrives, with no queue, no task and no copy. Recording
starts once *both* parties have sent media (the call's ``connected`` moment, so monitors'
flag offsets index the file) and each video track at its next key frame, which is requested
then. Key frames are also requested every ``keyframe_interval_s`` while recording, so a
browser can seek and a crash-truncated file decodes from a recent point (WebRTC senders send
key frames only when asked). A party that re-offers gets new publishers: the tap follows.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import av

from recorder.muxer import PARTIES, CallRecording, Kind, Party, RecordingStats
from recorder.service import PrivilegedCallError

PacketTap = Callable[["av.Packet[Any]"], None]


class PublisherLike(Protocol):
    """What the tap needs of ``media.forwarding.EncodedPublisher``."""

    kind: str

    def add_tap(self, tap: PacketTap) -> Callable[[], None]: ...

    def request_keyframe(self) -> None: ...


class RoomLike(Protocol):
    """What the tap needs of ``media.room.Room``."""

    call_id: str
    privileged: bool

    def publisher(self, party: Party, kind: str) -> PublisherLike | None: ...

    def add_publisher_listener(self, listener: Callable[[Party, PublisherLike], None]) -> None: ...


class RecorderTap:
    def __init__(
        self,
        recording: CallRecording,
        *,
        keyframe_interval_s: float = 10.0,
        wait_for_both_parties: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recording = recording
        self._interval = keyframe_interval_s
        self._clock = clock
        self._waiting = wait_for_both_parties
        self._heard: set[Party] = set()
        self._publishers: dict[tuple[Party, Kind], PublisherLike] = {}
        self._removers: dict[tuple[Party, Kind], Callable[[], None]] = {}
        self._last_key: dict[Party, float] = {}
        self._last_request: dict[Party, float] = {}
        self.closed = False

    @classmethod
    def for_room(cls, room: RoomLike, recording: CallRecording, **options: Any) -> RecorderTap:
        """Record ``room`` from now on (call before the parties offer, or at any time after).

        Raises :class:`PrivilegedCallError` for a privileged room: never recorded."""
        if room.privileged:
            raise PrivilegedCallError(f"call {room.call_id} is privileged: never recorded")
        tap = cls(recording, **options)
        for party in PARTIES:
            for kind in ("audio", "video"):
                publisher = room.publisher(party, kind)
                if publisher is not None:
                    tap.attach(party, publisher)
        room.add_publisher_listener(tap.attach)
        return tap

    def attach(self, party: Party, publisher: PublisherLike) -> None:
        """Record ``publisher`` as ``party``'s track of its kind (replacing a previous one)."""
        if self.closed:
            return
        kind: Kind = "video" if publisher.kind == "video" else "audio"
        remove = self._removers.pop((party, kind), None)
        if remove is not None:
            remove()
            self.recording.resync(party, kind)
        self._publishers[party, kind] = publisher
        on_packet = functools.partial(self._on_packet, party, kind, publisher)
        self._removers[party, kind] = publisher.add_tap(on_packet)
        if kind == "video":
            publisher.request_keyframe()

    def _on_packet(
        self, party: Party, kind: Kind, publisher: PublisherLike, packet: av.Packet[Any]
    ) -> None:
        if self.closed:
            return
        stamp = packet.opaque
        arrival = stamp if isinstance(stamp, float) else self._clock()
        if self._waiting:
            self._heard.add(party)
            if len(self._heard) < len(PARTIES):
                return
            self._waiting = False  # connected: start now, videos at their next key frames
            for (_, other_kind), other in self._publishers.items():
                if other_kind == "video":
                    other.request_keyframe()
        if kind == "video":
            if packet.is_keyframe:
                self._last_key[party] = arrival
            elif arrival - self._last_key.get(party, -math.inf) > self._interval:
                if arrival - self._last_request.get(party, -math.inf) > 1.0:
                    self._last_request[party] = arrival
                    publisher.request_keyframe()
        self.recording.write(party, kind, packet, arrival)

    def _detach(self) -> None:
        self.closed = True
        for remove in self._removers.values():
            remove()
        self._removers.clear()
        self._publishers.clear()

    def close(self) -> RecordingStats:
        """Stop taking frames and close the file (writes the trailer: blocking, short)."""
        self._detach()
        return self.recording.close()

    async def aclose(self) -> RecordingStats:
        """:meth:`close` with the file work in a thread."""
        self._detach()
        return await asyncio.to_thread(self.recording.close)
