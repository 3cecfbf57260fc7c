"""The load generator's light clients (:mod:`client.light_peer`) on a real call over loopback.

A full client (:class:`client.peer.PartyPeer`, red) calls a light one (blue) directly, DTLS and
SRTP for real. A tee in front of the light client's ICE connection hands every datagram to the
light path and to a *shadow* full receiver (its own SRTP session from the same DTLS keys, so
it unprotects and authenticates every packet, then the same RTX unwrapping and
:class:`client.media.RtpSink` counting as the full path). Some datagrams are dropped by the tee
before both, so losses, NACKs and retransmissions happen. The light sinks must count exactly
what the shadow counts; a tampered payload must be rejected by the light path's sampled
unprotects (and only those are dropped); the full client must get the light one's batched
(UDP GSO) frames whole.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import is_rtcp
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from client.header_sink import HeaderSink
from client.light_peer import LightPartyPeer, LightPeerConnection
from client.media import ClipSpec, RtpSink
from client.peer import PartyPeer, close_all
from rtpkit.batch_send import _GSO_ATTR, _groups
from rtpkit.lightpath import LightReceiver, LightStats
from rtpkit.rtp import RtpIn, vp8_keyframe_start
from tests.system.media.peers import connected
from tests.waiting import eventually

RED = ClipSpec(colour="red")
BLUE = ClipSpec(colour="blue")
SAMPLE_EVERY = 8
DROP_EVERY = 53  # RTP datagrams the tee drops before both receivers


def shadow_session(dtls: RTCDtlsTransport) -> Session:
    """A second inbound SRTP session with ``dtls``'s keys (as aiortc's ``_setup_srtp``)."""
    assert dtls._ssl is not None
    selected = dtls._ssl.get_selected_srtp_profile()
    [profile] = [p for p in dtls._srtp_profiles if p.openssl_profile == selected]
    view = dtls._ssl.export_keying_material(
        b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length)
    )
    key = profile.get_key_and_salt(view, 0 if dtls._role == "server" else 1)
    policy = Policy(
        key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile.libsrtp_profile
    )
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return Session(policy)


@dataclass
class Tee:
    """In front of the light client's ICE connection: drop, tamper, shadow, then the light path."""

    dtls: RTCDtlsTransport
    light: Callable[[bytes, int], None]
    shadow_sinks: dict[str, RtpSink] = field(default_factory=dict)
    rtp_seen: int = 0
    dropped: int = 0
    tamper_left: int = 0  # tamper this many RTP datagrams from now on
    tampered: int = 0
    on_tamper_end: Callable[[], None] | None = None  # right after the last tampered one
    _session: Session | None = None

    def __call__(self, data: bytes, component: int) -> None:
        rtp = 127 < data[0] < 192 and not is_rtcp(data)
        if rtp and self.dtls._rx_srtp is None:
            # RTP before this side has its keys: the light path queues it for aiortc, which
            # drops it or, if the keys are set meanwhile, counts it; the shadow has no session
            # yet. Dropped for both, so both count the same datagrams.
            return
        if rtp:
            self.rtp_seen += 1
            if self.tamper_left:
                self.tamper_left -= 1
                self.tampered += 1
                damaged = bytearray(data)
                damaged[24] ^= 0x55  # inside the (encrypted) payload
                self.light(bytes(damaged), component)
                if not self.tamper_left and self.on_tamper_end is not None:
                    self.on_tamper_end()
                return
            if self.rtp_seen % DROP_EVERY == 0:
                self.dropped += 1
                return
            self.light(data, component)
            self._shadow(data)  # after: an RTX SSRC the light path just learned is known
            return
        self.light(data, component)

    def _shadow(self, data: bytes) -> None:
        """The full path: unprotect + authenticate every packet, unwrap RTX, count."""
        if self._session is None:
            self._session = shadow_session(self.dtls)
        try:
            packet = RtpIn.parse(self._session.unprotect(data))
        except (SrtpError, ValueError):
            return
        receiver = self.dtls._rtp_router.ssrc_table.get(packet.ssrc)
        if not isinstance(receiver, LightReceiver):
            return
        info = receiver._pt_info.get(packet.payload_type)
        if info is None:
            return
        if info[1] is not None:  # RTX
            original = receiver._rtx_ssrc.get(packet.ssrc)
            if original is None or len(packet.payload) < 2:
                return
            packet = packet.unwrap_rtx(info[1], original)
        if not packet.payload:
            return
        kind = receiver.track.kind
        sink = self.shadow_sinks.setdefault(kind, RtpSink(kind, decode="none"))
        keyframe = kind == "video" and vp8_keyframe_start(packet.payload)
        sink.on_packet(packet, keyframe, time.monotonic())


@dataclass
class Call:
    full: PartyPeer
    light: LightPartyPeer
    tee: Tee

    @property
    def stats(self) -> LightStats:
        pc = self.light.pc
        assert isinstance(pc, LightPeerConnection)
        stats = pc.light_stats()
        assert stats is not None
        return stats

    def light_sink(self, kind: str) -> HeaderSink:
        sink = self.light.sinks[kind]
        assert isinstance(sink, HeaderSink)
        return sink

    def receivers(self) -> list[LightReceiver]:
        found = [t.receiver for t in self.light.pc.getTransceivers()]
        assert all(isinstance(r, LightReceiver) for r in found)
        return found  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def light_call() -> AsyncIterator[Call]:
    full = PartyPeer(RED, decode="keyframes")
    light = LightPartyPeer(BLUE, sample_every=SAMPLE_EVERY, sample_every_s=1.0)
    dtls = light.pc.getTransceivers()[0].receiver.transport
    connection = dtls.transport._connection
    tee = Tee(dtls, connection.data_received)
    connection.data_received = tee  # type: ignore[method-assign]
    try:
        offer = await full.offer()
        await light.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await light.pc.setLocalDescription(await light.pc.createAnswer())
        await full.accept_answer(light.pc.localDescription.sdp)
        await connected(full.pc)
        await connected(light.pc)
        yield Call(full, light, tee)
    finally:
        await close_all(full, light)


def counts(sink: RtpSink) -> dict[str, Any]:
    return {
        "packets": sink.packets,
        "lost": sink.lost,
        "frames": sink.frames,
        "keyframes": sink.keyframes,
        "dropped": sink._assembler.dropped,
    }


async def test_light_counts_match_the_full_receivers_on_the_same_datagrams() -> None:
    async with light_call() as call:
        video = call.light_sink("video")
        await eventually(
            lambda: video.keyframes >= 3 and call.tee.dropped >= 10,
            lambda: f"3 key frames and 10 drops, have {counts(video)}, {call.tee.dropped}",
            within_s=30,
        )
        for kind in ("audio", "video"):
            light, shadow = call.light_sink(kind), call.tee.shadow_sinks[kind]
            assert counts(light) == counts(shadow), kind
            # Never unprotected: most audio; for video (each frame's first packet, and here a
            # whole key frame every second for the content check) still a good part.
            assert light.header_only > light.packets * (0.8 if kind == "audio" else 0.25), kind
        stats = call.stats
        assert 0 < stats.decrypted < stats.datagrams / 2 and stats.rejected == 0
        assert call.tee.shadow_sinks["audio"].lost > 0  # drops show as loss (audio: no RTX)
        assert sum(r.nacks_sent for r in call.receivers()) > 0  # and video asked for them again
        # The content check decoded real, whole key frames: the full client is red.
        assert video.decoded >= 1 and video.main_colour == "red"
        # The light client's frames, sent batched (GSO), arrive whole at the full client.
        await eventually(lambda: call.full.sinks["video"].decoded >= 1, "the full client decodes")
        assert call.full.sinks["video"].main_colour == "blue"
        sender_transport = call.light.pc.getTransceivers()[0].sender.transport
        assert getattr(sender_transport, _GSO_ATTR) is not None  # sent with UDP GSO


async def test_a_tampered_payload_is_rejected_on_the_sampled_packets() -> None:
    async with light_call() as call:
        video = call.light_sink("video")
        await eventually(lambda: video.frames >= 30, "frames flow", within_s=30)
        before_rejected = call.stats.rejected
        before_packets = sum(r.packets for r in call.receivers())
        tampered = 4 * SAMPLE_EVERY * 5
        at_end: list[int] = []

        def tamper_end() -> None:
            at_end.extend([call.stats.rejected, sum(r.packets for r in call.receivers())])

        call.tee.on_tamper_end = tamper_end
        call.tee.tamper_left = tampered
        await eventually(lambda: bool(at_end), "the tampered datagrams went by")
        rejected, counted = at_end[0] - before_rejected, at_end[1] - before_packets
        # Every sampled one (one in SAMPLE_EVERY at least, plus each video frame's first
        # packet) failed SRTP authentication and was dropped; the others were counted.
        assert rejected >= tampered // SAMPLE_EVERY
        assert rejected + counted == tampered
        frames = video.frames
        await eventually(lambda: video.frames > frames + 10, "frames flow again after it")
        assert call.stats.rejected == before_rejected + rejected  # the real packets pass


def test_gso_groups_are_one_size_but_the_last() -> None:
    sizes = [[len(p) for p in g] for g in _groups([b"a" * n for n in (9, 9, 9, 4, 9, 9, 12, 3)])]
    assert sizes == [[9, 9, 9, 4], [9, 9], [12, 3]]
    assert [len(g) for g in _groups([b"x" * 1000] * 70)] == [32, 32, 6]


def test_a_header_sink_decodes_key_frames_or_nothing() -> None:
    with pytest.raises(ValueError):
        HeaderSink("video", decode="all")
