"""WebRTC endpoints for clients: a party (tablet or family) and a silent monitor.

A party sends a looping pre-encoded clip (no encoder runs, so a client costs little CPU) and
sinks what the other party sends; a monitor receives both parties on 2 audio + 2 video
``recvonly`` transceivers (PROTOCOL.md "WebRTC"). Offers carry every ICE candidate (no trickle).
"""

from __future__ import annotations

import asyncio

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from client.media import ClipSource, ClipSpec, MediaSink
from client.session import ProtocolClient
from media.passthrough import PassthroughPeerConnection


def rtc_config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class _Peer:
    pc: RTCPeerConnection

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._start_sinks()

    def _start_sinks(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        await self.pc.close()


class PartyPeer(_Peer):
    """A tablet's or family's media: sends ``spec``'s clip, sinks the other party's media."""

    def __init__(self, spec: ClipSpec, *, decode: bool = True) -> None:
        self.source = ClipSource(spec)
        # Pass-through senders (a PLI from the SFU jumps the clip to a keyframe).
        self.pc = PassthroughPeerConnection(rtc_config(), receive=not decode)
        self.pc.addTrack(self.source.audio)
        self.pc.addTrack(self.source.video)
        self.decode = decode
        self.sinks: dict[str, MediaSink] = {}

    def _start_sinks(self) -> None:
        for transceiver in self.pc.getTransceivers():
            track = transceiver.receiver.track
            self.sinks[transceiver.kind] = MediaSink(track, decode=self.decode).start()

    def stop_sending(self) -> None:
        """Stop this party's media (as when a tablet loses its network)."""
        self.source.stop()

    async def close(self) -> None:
        self.source.stop()
        for sink in self.sinks.values():
            await sink.stop()
        await super().close()


class MonitorPeer(_Peer):
    """A monitor's receive-only media: ``sinks["resident"|"family"]["audio"|"video"]``."""

    def __init__(self, *, decode: bool = True) -> None:
        self.pc = PassthroughPeerConnection(rtc_config(), receive=not decode)
        for _ in ("resident", "family"):
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
        self.decode = decode
        self.sinks: dict[str, dict[str, MediaSink]] = {"resident": {}, "family": {}}

    def _start_sinks(self) -> None:
        transceivers = self.pc.getTransceivers()
        for index, transceiver in enumerate(transceivers):
            who = "resident" if index < 2 else "family"
            sink = MediaSink(transceiver.receiver.track, decode=self.decode).start()
            self.sinks[who][transceiver.kind] = sink

    async def close(self) -> None:
        for pair in self.sinks.values():
            for sink in pair.values():
                await sink.stop()
        await super().close()


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
