"""Zero-transcode SFU core over real aiortc peer connections (same process, host ICE)."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiortc.codecs
import aiortc.codecs.opus
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from client.media import ClipSource, ClipSpec, MediaSink
from media.forwarding import EncodedPublisher, PliThrottle
from media.passthrough import PassthroughPeerConnection, PassthroughReceiver, PassthroughSender

# One keyframe per 4 s loop: a late viewer only gets one within 1 s through PLI.
RED = ClipSpec(colour="red", keyframe_interval_s=4.0, duration_s=4.0)
BLUE = ClipSpec(colour="blue", keyframe_interval_s=4.0, duration_s=4.0)


def config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


async def eventually(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Only for state that has no event to await (counters in aiortc internals)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


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


class Party:
    """A tablet/family client: sends a pre-encoded clip, sinks what it receives."""

    def __init__(self, spec: ClipSpec, *, decode: bool = True) -> None:
        self.source = ClipSource(spec)
        # Pass-through senders (PLI reaches the clip); receivers decode only if asked.
        self.pc = PassthroughPeerConnection(config(), receive=not decode)
        self.pc.addTrack(self.source.audio)
        self.pc.addTrack(self.source.video)
        self.decode = decode
        self.sinks: dict[str, MediaSink] = {}

    def start_sinks(self) -> None:
        for t in self.pc.getTransceivers():
            self.sinks[t.kind] = MediaSink(t.receiver.track, decode=self.decode).start()


class SfuLeg:
    """The SFU-side peer connection answering one client, publishing what it receives."""

    def __init__(self) -> None:
        self.pc = PassthroughPeerConnection(config())
        self.publishers: dict[str, EncodedPublisher] = {}

    async def answer(self, client: RTCPeerConnection, direction: str) -> None:
        await client.setLocalDescription(await client.createOffer())
        await self.pc.setRemoteDescription(client.localDescription)
        for t in self.pc.getTransceivers():
            t.direction = direction
            if direction == "sendrecv":
                receiver = t.receiver
                assert isinstance(receiver, PassthroughReceiver)
                self.publishers[t.kind] = EncodedPublisher(
                    receiver.track, request_keyframe=receiver.request_keyframe, name=t.kind
                ).start()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await client.setRemoteDescription(self.pc.localDescription)

    def transceivers(self, kind: str) -> list[RTCRtpTransceiver]:
        return [t for t in self.pc.getTransceivers() if t.kind == kind]

    def forward_from(self, other: SfuLeg) -> None:
        for kind in ("audio", "video"):
            self.transceivers(kind)[0].sender.replaceTrack(other.publishers[kind].subscribe())


async def close_all(*pcs: RTCPeerConnection) -> None:
    await asyncio.gather(*(pc.close() for pc in pcs))


async def call(decode: bool = True) -> tuple[Party, Party, SfuLeg, SfuLeg]:
    tablet, family = Party(RED, decode=decode), Party(BLUE, decode=decode)
    sfu_tablet, sfu_family = SfuLeg(), SfuLeg()
    await sfu_tablet.answer(tablet.pc, "sendrecv")
    await sfu_family.answer(family.pc, "sendrecv")
    sfu_tablet.forward_from(sfu_family)
    sfu_family.forward_from(sfu_tablet)
    tablet.start_sinks()
    family.start_sinks()
    return tablet, family, sfu_tablet, sfu_family


@pytest.mark.asyncio
async def test_parties_see_each_other_through_forwarding_sfu() -> None:
    tablet, family, sfu_tablet, sfu_family = await call()
    try:
        for leg in (sfu_tablet, sfu_family):
            sdp = leg.pc.localDescription.sdp
            assert "VP8/90000" in sdp and "opus/48000" in sdp and "H264" not in sdp
        await asyncio.wait_for(
            asyncio.gather(
                family.sinks["video"].wait_for(decoded=20),
                tablet.sinks["video"].wait_for(decoded=20),
                family.sinks["audio"].wait_for(frames=25),
                tablet.sinks["audio"].wait_for(frames=25),
            ),
            10,
        )
        assert family.sinks["video"].main_colour == "red"
        assert tablet.sinks["video"].main_colour == "blue"
        assert set(family.sinks["video"].colours) == {"red"}
        assert set(tablet.sinks["video"].colours) == {"blue"}

        # PLI from the family's decoder is relayed to the tablet's publisher (throttled).
        publisher = sfu_tablet.publishers["video"]
        requested = publisher.pli_throttle.requested
        receiver = family.pc.getTransceivers()[1].receiver
        ssrc = receiver.getSynchronizationSources()[0].source
        await receiver._send_rtcp_pli(ssrc)
        sender = sfu_family.transceivers("video")[0].sender
        assert isinstance(sender, PassthroughSender)
        await eventually(lambda: publisher.pli_throttle.requested > requested)
        assert sender.keyframe_requests >= 1
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


@pytest.mark.asyncio
async def test_late_monitor_gets_keyframe_within_one_second() -> None:
    tablet, family, sfu_tablet, sfu_family = await call()
    monitor = RTCPeerConnection(config())  # plain aiortc: offers H264/G722 too
    sfu_monitor = SfuLeg()
    try:
        await family.sinks["video"].wait_for(decoded=5)
        for kind in ("audio", "video", "audio", "video"):  # resident pair, then family pair
            monitor.addTransceiver(kind, direction="recvonly")
        await sfu_monitor.answer(monitor, "sendonly")
        assert "H264" not in sfu_monitor.pc.localDescription.sdp
        await asyncio.gather(connected(monitor), connected(sfu_monitor.pc))
        sinks = [
            MediaSink(t.receiver.track, colour_every=1).start() for t in monitor.getTransceivers()
        ]
        plis_before = tablet.source.video.keyframe_requests

        subscribed_at = time.monotonic()
        for index, leg in enumerate((sfu_tablet, sfu_family)):
            for kind in ("audio", "video"):
                track = leg.publishers[kind].subscribe(name=f"monitor-{kind}-{index}")
                sfu_monitor.transceivers(kind)[index].sender.replaceTrack(track)
        resident_video, family_video = sinks[1], sinks[3]
        await asyncio.wait_for(
            asyncio.gather(resident_video.first_decoded.wait(), family_video.first_decoded.wait()),
            1.0,
        )
        for sink in (resident_video, family_video):
            assert sink.first_decoded_at is not None
            assert sink.first_decoded_at - subscribed_at < 1.0
        assert resident_video.main_colour == "red"
        assert family_video.main_colour == "blue"
        # The natural keyframe is 4 s away: the keyframe came from a relayed PLI.
        assert tablet.source.video.keyframe_requests > plis_before
        await asyncio.wait_for(
            asyncio.gather(sinks[0].wait_for(frames=5), sinks[2].wait_for(frames=5)), 2
        )
    finally:
        await close_all(monitor, sfu_monitor.pc, tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Count every way aiortc could decode or encode media in this process."""
    calls: dict[str, int] = {}

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        return wrapper

    targets: list[tuple[Any, str]] = [
        (aiortc.rtcrtpreceiver, "decoder_worker"),
        (aiortc.rtcrtpreceiver, "get_decoder"),
        (aiortc.rtcrtpsender, "get_encoder"),
        (aiortc.codecs, "get_decoder"),
        (aiortc.codecs, "get_encoder"),
        (aiortc.codecs.vpx.Vp8Decoder, "__init__"),
        (aiortc.codecs.vpx.Vp8Encoder, "encode"),
        (aiortc.codecs.opus.OpusDecoder, "__init__"),
        (aiortc.codecs.opus.OpusEncoder, "__init__"),
        (aiortc.codecs.opus.OpusEncoder, "encode"),
    ]
    for owner, attr in targets:
        name = f"{getattr(owner, '__name__', owner)}.{attr}"
        monkeypatch.setattr(owner, attr, counting(name, getattr(owner, attr)))
    yield calls


@pytest.mark.asyncio
async def test_no_decoder_or_encoder_anywhere_during_call(codec_calls: dict[str, int]) -> None:
    # Clients also pass through (no decoding sinks): any codec use is the SFU's fault.
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    try:
        await asyncio.wait_for(
            asyncio.gather(
                *(p.sinks[k].wait_for(frames=30) for p in (tablet, family) for k in p.sinks),
                *(p.sinks["video"].wait_for(keyframes=1) for p in (tablet, family)),
            ),
            10,
        )
        for leg in (sfu_tablet, sfu_family):
            for t in leg.pc.getTransceivers():
                assert isinstance(t.receiver, PassthroughReceiver)
                assert isinstance(t.sender, PassthroughSender)
                assert t.receiver.frames_received >= 30
        assert codec_calls == {}
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


class QueueTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue()

    def push(self, keyframe: bool, pts: int) -> None:
        packet = av.Packet(b"\x00" * 10)
        packet.pts, packet.is_keyframe = pts, keyframe
        packet.time_base = fractions.Fraction(1, 90000)
        self.queue.put_nowait(packet)

    async def recv(self) -> av.Packet[Any]:
        item = await self.queue.get()
        if item is None:
            raise MediaStreamError
        return item


@pytest.mark.asyncio
async def test_fanout_gating_slow_subscriber_and_pli_throttle() -> None:
    source, plis = QueueTrack(), []
    publisher = EncodedPublisher(source, request_keyframe=lambda: plis.append(1), pli_interval=0.2)
    fast = publisher.subscribe(maxsize=100)
    slow = publisher.subscribe(maxsize=3)
    late_taps: list[int] = []
    publisher.add_tap(lambda p: late_taps.append(p.pts or 0))
    assert len(plis) == 1  # second subscribe within 0.2 s is throttled (trailing PLI)
    source.push(False, 0)  # before any keyframe: gated
    source.push(True, 1)
    for pts in range(2, 8):
        source.push(False, pts)
    source.queue.put_nowait(None)
    got = [(await fast.recv()).pts for _ in range(7)]
    assert got == list(range(1, 8)) and fast.skipped == 1
    # The slow subscriber overflowed: backlog dropped, waits for the next keyframe, asks PLI.
    assert slow.dropped > 0 and slow.waiting_for_keyframe and slow.queued == 0
    with pytest.raises(MediaStreamError):
        await fast.recv()
    assert late_taps == list(range(8)) and publisher.ended

    sent: list[float] = []
    throttle = PliThrottle(lambda: sent.append(time.monotonic()), interval=0.1)
    for _ in range(5):
        throttle.request()
    assert len(sent) == 1
    await eventually(lambda: len(sent) == 2, 1.0)  # coalesced trailing request
    assert sent[1] - sent[0] >= 0.09
    throttle.request()
    throttle.keyframe_seen()  # satisfied before the quiet period ends: no extra PLI
    await asyncio.sleep(0.15)
    assert len(sent) == 2 and throttle.requested == 6
    throttle.close()


@pytest.mark.asyncio
async def test_persistent_subscriber_retargets_to_new_publisher() -> None:
    first, second = QueueTrack(), QueueTrack()
    old = EncodedPublisher(first)
    sub = old.subscribe(persistent=True)
    first.push(True, 90000)
    first.queue.put_nowait(None)  # the party hangs up
    assert (await sub.recv()).pts == 90000
    await eventually(lambda: old.ended)
    assert sub.readyState == "live"
    new = EncodedPublisher(second)  # the party reconnects: timestamps restart at 0
    sub.retarget(new)
    second.push(False, 0)  # gated again until a keyframe
    second.push(True, 3000)
    second.push(False, 6000)
    rebased = [await sub.recv() for _ in range(2)]
    assert [p.is_keyframe for p in rebased] == [True, False]
    assert [p.pts for p in rebased] == [90000 + 1800, 90000 + 1800 + 3000]
    sub.stop()
    await new.stop()
