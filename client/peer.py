"""WebRTC endpoints for clients: a party (tablet or family) and a silent monitor.

A party sends a looping pre-encoded clip as RTP (no encoder runs, so a client costs little
CPU) and counts what the other party sends at RTP level; a monitor receives both parties on
2 audio + 2 video ``recvonly`` transceivers (PROTOCOL.md "WebRTC"). Offers carry every ICE
candidate (no trickle). ``decode`` picks what the sinks decode: ``True``/``"all"`` every
frame, ``"keyframes"`` only key frames, ``False``/``"none"`` nothing.

``ice_servers`` are the STUN/TURN servers of ``session.info`` (:func:`session_ice_servers`);
aiortc uses the first STUN and the first TURN URL it supports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from client.media import ClipSource, ClipSpec, RtpSink
from client.session import ProtocolClient
from rtpkit.passthrough import PassthroughPeerConnection, forwarding_ends
from rtpkit.rtp import MEDIA_KINDS


def rtc_ice_servers(servers: Iterable[Mapping[str, Any]]) -> list[RTCIceServer]:
    """``session.info``'s ``ice_servers`` (JSON) as aiortc objects."""
    return [
        RTCIceServer(
            urls=list(s["urls"]) if isinstance(s["urls"], list) else str(s["urls"]),
            username=s.get("username"),
            credential=s.get("credential"),
        )
        for s in servers
    ]


async def session_ice_servers(client: ProtocolClient) -> list[RTCIceServer]:
    """The STUN/TURN servers the server hands this session (fresh TURN credentials)."""
    return rtc_ice_servers(await client.ice_servers())


def rtc_config(ice_servers: list[RTCIceServer] | None = None) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=list(ice_servers or []), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )


def _decode_mode(decode: bool | str) -> str:
    if isinstance(decode, str):
        return decode
    return "all" if decode else "none"


class _Peer:
    pc: RTCPeerConnection

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def _sinks(self) -> list[RtpSink]:
        raise NotImplementedError

    async def close(self) -> None:
        for sink in self._sinks():
            sink.close()
        await self.pc.close()


class PartyPeer(_Peer):
    """A tablet's or family's media: sends ``spec``'s clip, sinks the other party's media."""

    def __init__(
        self,
        spec: ClipSpec,
        *,
        decode: bool | str = True,
        ice_servers: list[RTCIceServer] | None = None,
        config: RTCConfiguration | None = None,
    ) -> None:
        self.source = ClipSource(spec)
        self.pc = PassthroughPeerConnection(config or rtc_config(ice_servers))
        self.decode = _decode_mode(decode)
        self.sinks: dict[str, RtpSink] = {}
        for kind in MEDIA_KINDS:
            transceiver = self.pc.addTransceiver(kind, direction="sendrecv")
            receiver, sender = forwarding_ends(transceiver)
            sink = self.sinks[kind] = RtpSink(kind, decode=self.decode)
            receiver.on_packet = sink.on_packet
            self.source.stream(kind).attach(sender)

    def _sinks(self) -> list[RtpSink]:
        return list(self.sinks.values())

    def stop_sending(self) -> None:
        """Stop this party's media (as when a tablet loses its network)."""
        self.source.stop()

    async def close(self) -> None:
        self.source.stop()
        await super().close()


class MonitorPeer(_Peer):
    """A monitor's receive-only media: ``sinks["resident"|"family"]["audio"|"video"]``."""

    def __init__(
        self,
        *,
        decode: bool | str = True,
        ice_servers: list[RTCIceServer] | None = None,
        config: RTCConfiguration | None = None,
    ) -> None:
        self.pc = PassthroughPeerConnection(config or rtc_config(ice_servers))
        self.decode = _decode_mode(decode)
        self.sinks: dict[str, dict[str, RtpSink]] = {"resident": {}, "family": {}}
        for who in ("resident", "family"):
            for kind in MEDIA_KINDS:
                transceiver = self.pc.addTransceiver(kind, direction="recvonly")
                receiver, _ = forwarding_ends(transceiver)
                sink = self.sinks[who][kind] = RtpSink(kind, decode=self.decode)
                receiver.on_packet = sink.on_packet

    def _sinks(self) -> list[RtpSink]:
        return [sink for pair in self.sinks.values() for sink in pair.values()]


async def join_call(client: ProtocolClient, call_id: str, peer: PartyPeer) -> None:
    """Send ``rtc.offer`` for a party and apply the server's answer."""
    answer = await client.request("rtc.offer", {"call_id": call_id, "sdp": await peer.offer()})
    await peer.accept_answer(str(answer["sdp"]))


async def watch_call(client: ProtocolClient, call_id: str, peer: MonitorPeer) -> None:
    """Send ``monitor.watch`` and apply the server's answer."""
    answer = await client.request("monitor.watch", {"call_id": call_id, "sdp": await peer.offer()})
    await peer.accept_answer(str(answer["sdp"]))


async def close_all(*peers: _Peer) -> None:
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
