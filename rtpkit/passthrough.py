"""Zero-transcode peer connections: aiortc for ICE, DTLS, SRTP and SDP; RTP packets only.

:class:`PassthroughPeerConnection` converts each transceiver's receiver and sender in place
into :class:`rtpkit.endpoints.ForwardingReceiver` / :class:`rtpkit.endpoints.ForwardingSender`
before aiortc starts them, and puts its transports on the synchronous SRTP path
(:mod:`rtpkit.fastpath`): no jitter buffer, no decoder thread, no encoder, no RTP loop. The
SFU room feeds senders from publishers (:mod:`media.forwarding`); clients feed them
pre-packetized frames (:mod:`client.media`).

As the answerer (the SFU) it negotiates only the forwarded codecs (VP8 + its RTX, Opus),
whatever the offer's order; as the offerer (a client) it offers only those.
"""

from __future__ import annotations

from typing import Final, Protocol

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx

from rtpkit import fastpath
from rtpkit.endpoints import ForwardingReceiver, ForwardingSender, enable_receiver, enable_sender
from rtpkit.rtp import is_vp8_keyframe


class IceNetwork(Protocol):
    """Where a peer connection's ICE binds and what it announces (the SFU's: :mod:`media.ice`)."""

    def prepare(self, pc: RTCPeerConnection) -> None: ...


#: The only codecs the SFU forwards (nothing is ever transcoded).
FORWARDED_MIME_TYPES: Final[dict[str, str]] = {"audio": "audio/opus", "video": "video/VP8"}

__all__ = [
    "FORWARDED_MIME_TYPES",
    "PassthroughPeerConnection",
    "forwarding_ends",
    "is_vp8_keyframe",
    "prefer_forwarded_codecs",
    "restrict_codecs",
]


def restrict_codecs(transceiver: RTCRtpTransceiver) -> None:
    """After ``setRemoteDescription(offer)``: keep only VP8 (+ its RTX) or Opus.

    The answer is generated from ``transceiver._codecs`` (aiortc-private), so this
    forces the SFU answer to negotiate the forwarded codec whatever the offer's order.
    """
    wanted = FORWARDED_MIME_TYPES[transceiver.kind].lower()
    primary = [c for c in transceiver._codecs if c.mimeType.lower() == wanted]
    if not primary:
        raise ValueError(f"remote offer has no {wanted} for {transceiver.kind}")
    primary = primary[:1]
    apt = primary[0].payloadType
    rtx = [c for c in transceiver._codecs if is_rtx(c) and c.parameters.get("apt") == apt]
    transceiver._codecs = primary + rtx[:1]


def prefer_forwarded_codecs(transceiver: RTCRtpTransceiver) -> None:
    """For offerers (clients): offer only VP8 (+RTX) / Opus, via public API."""
    wanted = FORWARDED_MIME_TYPES[transceiver.kind].lower()
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences(
        [c for c in capabilities if c.mimeType.lower() in (wanted, f"{transceiver.kind}/rtx")]
    )


def forwarding_ends(transceiver: RTCRtpTransceiver) -> tuple[ForwardingReceiver, ForwardingSender]:
    """The transceiver's receiver and sender, converted in place (idempotent)."""
    receiver = enable_receiver(transceiver.receiver)
    sender = enable_sender(transceiver.sender)
    fastpath.install(receiver.transport)
    return receiver, sender


class PassthroughPeerConnection(RTCPeerConnection):
    """RTCPeerConnection whose transceivers forward RTP packets only; see the module docstring.

    ``network`` (the SFU's) binds its ICE sockets in a port range and announces a public
    address (:class:`IceNetwork`, e.g. :mod:`media.ice`)."""

    def __init__(
        self, configuration: RTCConfiguration | None = None, network: IceNetwork | None = None
    ) -> None:
        super().__init__(configuration)
        self._network = network

    def _install(self) -> None:
        for transceiver in self.getTransceivers():
            forwarding_ends(transceiver)

    async def setRemoteDescription(self, sessionDescription: RTCSessionDescription) -> None:
        await super().setRemoteDescription(sessionDescription)
        if sessionDescription.type == "offer":
            for transceiver in self.getTransceivers():
                restrict_codecs(transceiver)
        self._install()

    async def createOffer(self) -> RTCSessionDescription:
        for transceiver in self.getTransceivers():
            if not transceiver._preferred_codecs:
                prefer_forwarded_codecs(transceiver)
        return await super().createOffer()

    async def setLocalDescription(
        self, sessionDescription: RTCSessionDescription | None = None
    ) -> None:
        self._install()
        if self._network is not None:
            self._network.prepare(self)  # before aiortc gathers candidates
        await super().setLocalDescription(sessionDescription)
        self._install()
