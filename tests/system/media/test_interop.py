"""Offers from other WebRTC stacks (SPEC "Real networks"), table-driven, with real aiortc peers.

Each :data:`VARIANTS` row builds its peers one way (an aiortc bundle policy, codec
preferences) and munges their offers the way other stacks differ (:mod:`tests.system.media.munge`).
The SFU side is a :class:`media.room.Room` in this process, exactly what a worker runs:

* parties: both tablet and family offer that way; each must see the other's clip colour;
* monitors: one that way watches a call of two ordinary parties; the resident's video and tone
  must arrive on the first audio/video pair and the family's on the second, nothing mixed.

Every answer must negotiate VP8 (+ RTX) and Opus only, and bundle exactly when RFC 8843 lets
the offerer follow (see :mod:`media.offers`). Offers that cannot be served get
``invalid_sdp`` naming what is missing.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from client.media import ClipSpec
from client.peer import MonitorPeer, PartyPeer, close_all
from media.control import ControlError
from media.room import Room
from tests.system.media.munge import (
    Munge,
    add_extensions,
    add_fec,
    compose,
    reverse_codecs,
    strip_bundle,
    strip_ssrcs,
    tag_last,
    without_codec,
)
from tests.system.media.peers import TrackSink, connected, see_each_other

# Small clips (cheap to decode), one key frame per loop: viewers get theirs through PLI.
TABLET_CLIP = ClipSpec("red", width=320, height=180, keyframe_interval_s=4.0, tone_hz=440.0)
FAMILY_CLIP = ClipSpec("blue", width=320, height=180, keyframe_interval_s=4.0, tone_hz=1320.0)
BALANCED, MAX_COMPAT = RTCBundlePolicy.BALANCED, RTCBundlePolicy.MAX_COMPAT


def same(sdp: str) -> str:
    return sdp


@dataclass(frozen=True)
class Variant:
    name: str
    policy: RTCBundlePolicy = RTCBundlePolicy.MAX_BUNDLE
    munge: Munge = same
    h264_first: bool = False  # H.264 before VP8, Opus after G.711/G.722
    party_bundled: bool = True  # the SFU's answer carries BUNDLE
    monitor_bundled: bool = True


VARIANTS = [
    Variant("max-bundle"),
    Variant("balanced", BALANCED, monitor_bundled=False),
    Variant("max-compat", MAX_COMPAT),
    Variant("separate transports", MAX_COMPAT, strip_bundle, False, False, False),
    Variant("one transport per kind", BALANCED, strip_bundle, False, False, False),
    Variant("BUNDLE tagged on the last m-line", MAX_COMPAT, tag_last),
    Variant("H.264 first", h264_first=True),
    Variant("codecs reversed", munge=reverse_codecs),
    Variant("RTX, RED and ULPFEC", munge=add_fec),
    Variant("extra header extensions", munge=add_extensions),
    Variant("no SSRC lines", munge=strip_ssrcs),
    Variant(
        "all at once",
        BALANCED,
        compose(strip_ssrcs, add_fec, add_extensions, reverse_codecs),
        h264_first=True,
        monitor_bundled=False,
    ),
]
_ids = itertools.count()


def offer_codecs(transceiver: RTCRtpTransceiver, h264_first: bool) -> None:
    """Everything aiortc can do (as a plain aiortc peer offers), optionally H.264 first."""
    codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    if h264_first:
        first = "video/h264" if transceiver.kind == "video" else "audio/pcmu"
        codecs = sorted(codecs, key=lambda c: c.mimeType.lower() != first)
        codecs = [c for c in codecs if c.mimeType.lower() != "audio/opus"] + [
            c for c in codecs if c.mimeType.lower() == "audio/opus"
        ]
    transceiver.setCodecPreferences(codecs)


def party(clip: ClipSpec, variant: Variant) -> PartyPeer:
    peer = PartyPeer(clip, config=RTCConfiguration(iceServers=[], bundlePolicy=variant.policy))
    for transceiver in peer.pc.getTransceivers():
        offer_codecs(transceiver, variant.h264_first)
    return peer


def check_answer(answer: str, bundled: bool) -> None:
    """VP8 (+RTX) and Opus only; BUNDLE as expected."""
    assert ("a=group:BUNDLE" in answer) is bundled, answer
    for section in answer.split("m=")[1:]:
        kind = section.split(" ", 1)[0]
        names = set(re.findall(r"a=rtpmap:\d+ ([^/]+)/", section))
        assert names == ({"opus"} if kind == "audio" else {"VP8", "rtx"}), section


async def offer_from(peer: PartyPeer | MonitorPeer | RTCPeerConnection) -> str:
    pc = peer if isinstance(peer, RTCPeerConnection) else peer.pc
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


def new_room() -> Room:
    return Room(f"interop-{next(_ids)}", lambda *_: None, media_timeout_s=60).start()


# ------------------------------------------------------------------------- parties


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
async def test_parties_see_each_other(variant: Variant) -> None:
    room = new_room()
    tablet, family = party(TABLET_CLIP, variant), party(FAMILY_CLIP, variant)
    try:
        for name, peer in (("tablet", tablet), ("family", family)):
            answer = await room.offer(name, variant.munge(await offer_from(peer)))  # type: ignore[arg-type]
            check_answer(answer, variant.party_bundled)
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await see_each_other(tablet, family, decoded=10)
    finally:
        await close_all(tablet, family)
        await room.close()


# ------------------------------------------------------------------------- monitors


@dataclass
class LiveCall:
    room: Room
    tablet: PartyPeer
    family: PartyPeer


@pytest.fixture(scope="module")
async def live_call() -> AsyncIterator[LiveCall]:
    """One call of two ordinary parties that every monitor variant watches."""
    room = new_room()
    tablet, family = PartyPeer(TABLET_CLIP, decode=False), PartyPeer(FAMILY_CLIP, decode=False)
    try:
        for name, peer in (("tablet", tablet), ("family", family)):
            await peer.accept_answer(await room.offer(name, await peer.offer()))  # type: ignore[arg-type]
        await asyncio.wait_for(
            asyncio.gather(
                tablet.sinks["video"].wait_for(frames=5), family.sinks["video"].wait_for(frames=5)
            ),
            10,
        )
        yield LiveCall(room, tablet, family)
    finally:
        await close_all(tablet, family)
        await room.close()


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
async def test_monitor_sees_each_party_on_its_own_pair(
    live_call: LiveCall, variant: Variant
) -> None:
    monitor = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=variant.policy))
    sinks: list[TrackSink] = []
    try:
        for kind in ("audio", "video", "audio", "video"):  # resident pair, then family pair
            transceiver = monitor.addTransceiver(kind, direction="recvonly")
            if variant.h264_first:
                offer_codecs(transceiver, True)
        answer = await live_call.room.watch(variant.name, variant.munge(await offer_from(monitor)))
        check_answer(answer, variant.monitor_bundled)
        await monitor.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        sinks = [TrackSink(t.receiver.track) for t in monitor.getTransceivers()]
        resident_audio, resident_video, family_audio, family_video = sinks
        await asyncio.wait_for(asyncio.gather(*(sink.wait_for(10) for sink in sinks)), 10)
        await connected(monitor)
        assert set(resident_video.colours) == {"red"}
        assert set(family_video.colours) == {"blue"}
        assert resident_audio.main_tone == pytest.approx(440, abs=60)
        assert family_audio.main_tone == pytest.approx(1320, abs=60)
    finally:
        for sink in sinks:
            await sink.stop()
        await live_call.room.unwatch(variant.name)
        await monitor.close()


# ------------------------------------------------------------------------- browsers

CHROMIUM_OFFERS = {
    path.stem: path.read_text() for path in sorted((Path(__file__).parent / "sdp").glob("*.sdp"))
}


@pytest.mark.parametrize("name", CHROMIUM_OFFERS)
async def test_recorded_chromium_offers_are_answered_on_one_transport(name: str) -> None:
    """Chromium 156's offers (``chrome-<bundle policy>-<role>.sdp``, the pages' codec
    preferences): a transport per m-line (balanced, max-compat) or candidates on the first
    m-line only (max-bundle, the others at port 9): all bundled on the tagged transport."""
    sdp = CHROMIUM_OFFERS[name]
    room = new_room()
    try:
        if name.endswith("monitor"):
            answer = await room.watch("S1", sdp)
        else:
            answer = await room.offer("tablet", sdp)
        check_answer(answer, bundled=True)
        sections = answer.split("m=")[1:]
        candidates = [sorted(re.findall(r"a=candidate:.*", s)) for s in sections]
        assert candidates[0] and all(c == candidates[0] for c in candidates)
        assert "a=group:BUNDLE " + " ".join(str(i) for i in range(len(sections))) in answer
    finally:
        await room.close()


# ------------------------------------------------------------------------- refusals


async def refused(offer: str, role: str) -> str:
    """The ``invalid_sdp`` message an offer gets from a room."""
    room = new_room()
    try:
        with pytest.raises(ControlError) as info:
            if role == "monitor":
                await room.watch("S1", offer)
            else:
                await room.offer("tablet", offer)
        assert info.value.code == "invalid_sdp"
        return info.value.message
    finally:
        await room.close()


async def test_offers_that_cannot_be_served_say_what_is_missing() -> None:
    tablet = party(TABLET_CLIP, Variant("plain aiortc", BALANCED))
    monitor = MonitorPeer(decode=False)
    for transceiver in monitor.pc.getTransceivers():
        offer_codecs(transceiver, False)
    try:
        sdp = await offer_from(tablet)
        watch = await offer_from(monitor)
        assert await refused(without_codec("VP8")(sdp), "party") == (
            "the offer has no VP8 video codec"
        )
        assert await refused(without_codec("opus")(sdp), "party") == (
            "the offer has no Opus audio codec"
        )
        assert await refused(
            compose(without_codec("VP8"), without_codec("opus"))(watch), "monitor"
        ) == ("the offer has no Opus audio codec; the offer has no VP8 video codec")
        assert await refused(sdp, "monitor") == (
            "a monitor's offer needs 2 audio and 2 video m-lines, got 1 and 1"
        )
        assert await refused(watch, "party") == (
            "a party's offer needs 1 audio and 1 video m-line, got 2 and 2"
        )
        assert "must send (sendrecv), but mid 0 is recvonly" in await refused(
            sdp.replace("a=sendrecv", "a=recvonly"), "party"
        )
        assert (await refused("v=0 garbage", "party")).startswith("unusable offer")
    finally:
        await close_all(tablet, monitor)
