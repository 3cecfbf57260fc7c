"""The SFU's RTP forwarding over real aiortc peer connections (same process, host ICE).

Clients are :class:`client.peer.PartyPeer` (RTP-level clip senders and sinks); the SFU side is
one :class:`PassthroughPeerConnection` per client whose receivers feed
:class:`media.forwarding.Publisher` objects and whose senders are subscribed to the other
party's publishers, exactly as :class:`media.room.Room` wires them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiortc.codecs
import aiortc.codecs.opus
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.clock import current_ntp_time

from client.media import ClipSpec
from client.peer import PartyPeer
from media.forwarding import PliThrottle, Publisher
from rtpkit.endpoints import ForwardingReceiver, ForwardingSender
from rtpkit.passthrough import PassthroughPeerConnection, forwarding_ends
from rtpkit.rtp import RtpIn, seq_delta, ts_delta, vp8_keyframe_start
from tests.system.media.peers import BLUE, RED, TrackSink, config, connected, see_each_other
from tests.waiting import eventually


class SfuLeg:
    """The SFU-side peer connection answering one client, publishing what it receives."""

    def __init__(self) -> None:
        self.pc = PassthroughPeerConnection(config())
        self.publishers: dict[str, Publisher] = {}

    async def answer(self, client: RTCPeerConnection, direction: str) -> None:
        await client.setLocalDescription(await client.createOffer())
        await self.pc.setRemoteDescription(client.localDescription)
        for t in self.pc.getTransceivers():
            t.direction = direction
            receiver, _ = forwarding_ends(t)
            if direction == "sendrecv":
                self.publishers[t.kind] = Publisher(receiver, kind=t.kind, name=t.kind)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await client.setRemoteDescription(self.pc.localDescription)

    def transceivers(self, kind: str) -> list[RTCRtpTransceiver]:
        return [t for t in self.pc.getTransceivers() if t.kind == kind]

    def sender(self, kind: str, index: int = 0) -> ForwardingSender:
        sender = self.transceivers(kind)[index].sender
        assert isinstance(sender, ForwardingSender)
        return sender

    def forward_from(self, other: SfuLeg) -> None:
        for kind in ("audio", "video"):
            other.publishers[kind].subscribe(self.sender(kind))


async def call(decode: bool = True) -> tuple[PartyPeer, PartyPeer, SfuLeg, SfuLeg]:
    tablet, family = party(RED, decode), party(BLUE, decode)
    sfu_tablet, sfu_family = SfuLeg(), SfuLeg()
    await sfu_tablet.answer(tablet.pc, "sendrecv")
    await sfu_family.answer(family.pc, "sendrecv")
    sfu_tablet.forward_from(sfu_family)
    sfu_family.forward_from(sfu_tablet)
    return tablet, family, sfu_tablet, sfu_family


async def close_all(*pcs: RTCPeerConnection) -> None:
    """Close peer connections; a client peer's whole PartyPeer (its sinks too) is closed."""
    await asyncio.gather(*(_peers.pop(id(pc), pc).close() for pc in pcs))


_peers: dict[int, PartyPeer] = {}


def party(spec: ClipSpec, decode: bool) -> PartyPeer:
    peer = PartyPeer(spec, decode=decode)
    _peers[id(peer.pc)] = peer
    return peer


def client_receiver(peer: PartyPeer, kind: str) -> ForwardingReceiver:
    [t] = [t for t in peer.pc.getTransceivers() if t.kind == kind]
    assert isinstance(t.receiver, ForwardingReceiver)
    return t.receiver


def client_sender(peer: PartyPeer, kind: str) -> ForwardingSender:
    [t] = [t for t in peer.pc.getTransceivers() if t.kind == kind]
    assert isinstance(t.sender, ForwardingSender)
    return t.sender


class Recorded:
    """Every packet one client receiver gets (ssrc, seq, timestamp, keyframe start)."""

    def __init__(self, receiver: ForwardingReceiver) -> None:
        self.packets: list[tuple[int, int, int, bool]] = []
        inner = receiver.on_packet
        assert inner is not None

        def on_packet(packet: RtpIn, keyframe_start: bool, arrival: float) -> None:
            self.packets.append(
                (packet.ssrc, packet.sequence_number, packet.timestamp, keyframe_start)
            )
            inner(packet, keyframe_start, arrival)

        receiver.on_packet = on_packet


async def test_parties_see_each_other_through_the_forwarding_sfu() -> None:
    tablet, family, sfu_tablet, sfu_family = await call()
    try:
        for leg in (sfu_tablet, sfu_family):
            sdp = leg.pc.localDescription.sdp
            assert "VP8/90000" in sdp and "opus/48000" in sdp and "H264" not in sdp
        await see_each_other(tablet, family, decoded=20)
        assert family.sinks["video"].lost == 0  # loopback: nothing missing

        # PLI from the family's decoder reaches the SFU sender, is relayed (throttled) to
        # the tablet's publisher, and the tablet's clip jumps to a key frame.
        publisher = sfu_tablet.publishers["video"]
        requested, jumps = publisher.pli_throttle.requested, tablet.source.video.keyframe_requests
        assert client_receiver(family, "video").request_keyframe()
        await eventually(lambda: tablet.source.video.keyframe_requests > jumps)
        assert sfu_family.sender("video").keyframe_requests >= 1
        assert publisher.pli_throttle.requested > requested
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


async def test_late_plain_aiortc_monitor_is_gated_to_a_keyframe_within_one_second() -> None:
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    monitor = RTCPeerConnection(config())  # plain aiortc: its own jitter buffer and decoder
    sfu_monitor = SfuLeg()
    try:
        await family.sinks["video"].wait_for(frames=5)
        for kind in ("audio", "video", "audio", "video"):  # resident pair, then family pair
            monitor.addTransceiver(kind, direction="recvonly")
        await sfu_monitor.answer(monitor, "sendonly")
        assert "H264" not in sfu_monitor.pc.localDescription.sdp
        await asyncio.gather(connected(monitor), connected(sfu_monitor.pc))
        sinks = [TrackSink(t.receiver.track) for t in monitor.getTransceivers()]
        plis_before = tablet.source.video.keyframe_requests

        subscribed_at = time.monotonic()
        subscriptions = [
            leg.publishers[kind].subscribe(sfu_monitor.sender(kind, index))
            for index, leg in enumerate((sfu_tablet, sfu_family))
            for kind in ("audio", "video")
        ]
        resident_video, family_video = sinks[1], sinks[3]
        await asyncio.wait_for(
            asyncio.gather(resident_video.first_decoded.wait(), family_video.first_decoded.wait()),
            1.0,
        )
        for sink in (resident_video, family_video):
            assert sink.first_decoded_at is not None
            assert sink.first_decoded_at - subscribed_at < 1.0
        await asyncio.gather(resident_video.wait_for(10), family_video.wait_for(10))
        assert set(resident_video.colours) == {"red"}
        assert set(family_video.colours) == {"blue"}
        # The natural keyframe is 4 s away: the keyframe came from a relayed PLI, and the
        # video subscriptions skipped what came before it.
        assert tablet.source.video.keyframe_requests > plis_before
        assert all(not s.waiting_for_keyframe for s in subscriptions)
        await asyncio.wait_for(asyncio.gather(sinks[0].wait_for(5), sinks[2].wait_for(5)), 2)
        for sink in sinks:
            await sink.stop()
    finally:
        await close_all(monitor, sfu_monitor.pc, tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


async def test_gating_starts_exactly_at_a_keyframe_packet() -> None:
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    try:
        recorded = Recorded(client_receiver(family, "video"))
        await family.sinks["video"].wait_for(keyframes=1, frames=10)
        first = recorded.packets[0]
        assert first[3], "the first packet a new subscriber gets starts a key frame"
        assert all(
            seq_delta(b[1], a[1]) == 1
            for a, b in zip(recorded.packets, recorded.packets[1:], strict=False)
        )
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


async def test_stream_continues_across_a_publisher_re_offer() -> None:
    """SSRC, sequence numbers and timestamps stay continuous when a party reconnects."""
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    second = party(RED, False)
    sfu_second = SfuLeg()
    try:
        video, audio = (
            Recorded(client_receiver(family, "video")),
            Recorded(client_receiver(family, "audio")),
        )
        await family.sinks["video"].wait_for(frames=20)
        await family.sinks["audio"].wait_for(frames=20)
        # The tablet reconnects: a new connection, new SSRCs, new random seq/timestamps.
        await sfu_second.answer(second.pc, "sendrecv")
        before = {"video": len(video.packets), "audio": len(audio.packets)}
        for kind in ("audio", "video"):
            sfu_family_sub = sfu_tablet.publishers[kind].subscriptions[0]
            sfu_family_sub.retarget(sfu_second.publishers[kind])
        tablet.stop_sending()
        await family.sinks["video"].wait_for(frames=family.sinks["video"].frames + 20)
        for kind, rec in (("video", video), ("audio", audio)):
            packets = rec.packets
            assert len(packets) > before[kind] + 5
            assert len({p[0] for p in packets}) == 1, "one SSRC for the whole call"
            steps = [seq_delta(b[1], a[1]) for a, b in itertools.pairwise(packets)]
            assert set(steps) == {1}, f"{kind}: sequence numbers continue without a gap"
            jumps = [ts_delta(b[2], a[2]) for a, b in itertools.pairwise(packets)]
            assert min(jumps) >= 0, f"{kind}: timestamps never go back"
            switch = before[kind]
            # across the switch the timestamp advances by about the wall time between them
            assert ts_delta(packets[switch][2], packets[switch - 1][2]) < 90000 * 2
        assert video.packets[before["video"]][3], "the new source starts at a key frame"
        assert family.sinks["video"].keyframes >= 2
    finally:
        await close_all(
            tablet.pc, family.pc, second.pc, sfu_tablet.pc, sfu_family.pc, sfu_second.pc
        )


async def test_nack_is_answered_with_rtx_from_the_senders_history() -> None:
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    try:
        recorded = Recorded(client_receiver(family, "video"))
        await family.sinks["video"].wait_for(frames=10)
        receiver = client_receiver(family, "video")
        sender = sfu_family.sender("video")
        ssrc = recorded.packets[-1][0]
        wanted = [p[1] for p in recorded.packets[-3:]]
        await receiver._send_rtcp_nack(ssrc, wanted)
        await eventually(lambda: sender.retransmitted >= 3)
        assert sender.nacks_received == 1
        # They came back as RTX (the SDP negotiated it): a second SSRC at the receiver,
        # unwrapped to the original sequence numbers.
        streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        await eventually(lambda: len(streams) == 2)
        await eventually(lambda: [p[1] for p in recorded.packets].count(wanted[0]) == 2)
        # A NACK for something long gone is ignored, not answered with the wrong packet.
        await receiver._send_rtcp_nack(ssrc, [(wanted[0] - 2000) & 0xFFFF])
        await eventually(lambda: sender.nacks_received == 2)
        assert sender.retransmitted == 3
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


async def test_publisher_losses_are_nacked_upstream() -> None:
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    try:
        await family.sinks["video"].wait_for(frames=10)
        receiver = sfu_tablet.publishers["video"].receiver
        ssrc = receiver.media_ssrc()
        assert ssrc is not None
        tablet_sender = client_sender(tablet, "video")
        recent = (tablet_sender._seq + 3) & 0xFFFF  # a packet far ahead: two are "missing"
        fake = RtpIn(tablet_sender._pt, 0, recent, 0, ssrc, b"\x80\x80\x80\x01" + b"\x00" * 10)
        receiver.handle_rtp(fake, time.monotonic())
        assert receiver.nacks_sent >= 1
        await eventually(lambda: tablet_sender.nacks_received >= 1)
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


async def test_sender_reports_map_the_forwarded_stream_onto_the_source_clock() -> None:
    tablet, family, sfu_tablet, sfu_family = await call(decode=False)
    try:
        recorded = Recorded(client_receiver(family, "video"))
        receiver = client_receiver(family, "video")
        source = sfu_tablet.publishers["video"].receiver
        await eventually(lambda: source.last_sr is not None, within_s=5)  # the tablet's own SR
        assert source.last_sr is not None
        heard_at = source.last_sr[2]
        # The next SR the family gets was made after the SFU knew the tablet's clock.
        await eventually(
            lambda: receiver.last_sr is not None and receiver.last_sr[2] > heard_at, within_s=5
        )
        assert receiver.last_sr is not None and source.last_sr is not None
        ntp_out, rtp_out, _ = receiver.last_sr
        ntp_in, rtp_in, _ = source.last_sr
        sender = sfu_family.sender("video")
        assert sender.sender_reports >= 1
        # Same line through (NTP, RTP) as the tablet's report, shifted by the stream's offset.
        seconds = (ntp_out - ntp_in) / (1 << 32)
        expected = (rtp_in + round(seconds * 90000) + sender._ts_offset) & 0xFFFFFFFF
        assert abs(ts_delta(rtp_out, expected)) <= 90  # 1 ms
        # ... and on the forwarded stream's own (rewritten) timeline and the wall clock.
        assert abs(ts_delta(rtp_out, recorded.packets[-1][2])) < 90000
        assert abs(ntp_out - current_ntp_time()) < 2 << 32
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


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
        (aiortc.codecs.vpx.Vp8Encoder, "pack"),
        (aiortc.codecs.opus.OpusDecoder, "__init__"),
        (aiortc.codecs.opus.OpusEncoder, "__init__"),
        (aiortc.codecs.opus.OpusEncoder, "encode"),
    ]
    for owner, attr in targets:
        name = f"{getattr(owner, '__name__', owner)}.{attr}"
        monkeypatch.setattr(owner, attr, counting(name, getattr(owner, attr)))
    yield calls


async def test_no_decoder_encoder_or_packetizer_anywhere_during_call(
    codec_calls: dict[str, int],
) -> None:
    # Clients do not decode either: any codec use is the SFU's fault.
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
            for publisher in leg.publishers.values():
                assert publisher.packets >= 30
        assert codec_calls == {}
    finally:
        await close_all(tablet.pc, family.pc, sfu_tablet.pc, sfu_family.pc)


async def test_pli_throttle_coalesces_and_drops_satisfied_requests() -> None:
    sent: list[float] = []
    throttle = PliThrottle(lambda: sent.append(time.monotonic()), interval=0.1)
    for _ in range(5):
        throttle.request()
    assert len(sent) == 1
    await eventually(lambda: len(sent) == 2, within_s=1.0)  # coalesced trailing request
    assert sent[1] - sent[0] >= 0.09
    throttle.request()
    assert throttle._timer is not None  # a trailing request is due at the quiet period's end
    throttle.keyframe_seen()  # satisfied before the quiet period ends: no extra PLI
    await eventually(lambda: throttle._timer is None, "the trailing request's time came")
    assert len(sent) == 2 and throttle.requested == 6
    throttle.close()


def test_clip_packets_mark_keyframe_starts() -> None:
    from client.media import load_clip
    from rtpkit.rtp import vp8_payloads

    clip = load_clip(ClipSpec(colour="red", duration_s=1.0, keyframe_interval_s=0.5))
    starts = [vp8_keyframe_start(vp8_payloads(frame, 7)[0]) for frame in clip.video]
    assert [i for i, s in enumerate(starts) if s] == clip.keyframes
