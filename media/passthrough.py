"""Zero-transcode seams in aiortc: encoded frames in, encoded frames out.

Receive side: :class:`PassthroughReceiver` replaces aiortc's per-track decoder
thread with an in-loop sink, so ``receiver.track.recv()`` yields :class:`av.Packet`
(one complete encoded frame, ``pts`` = RTP timestamp rebased to 0, ``time_base`` =
1/clock rate, ``is_keyframe`` from the VP8 frame tag, ``opaque`` = ``time.monotonic()`` when
the frame was complete). No decoder, no thread.

Send side: :class:`PassthroughSender` pre-installs a pack-only packetizer (aiortc's
``Vp8Encoder.pack`` path, which never creates a libvpx context; Opus frames go out
as-is) and turns incoming PLI/FIR into ``sender.track.request_keyframe()``.

Install per connection with :class:`PassthroughPeerConnection`, per object with
:func:`enable_passthrough_receiver` / :func:`enable_passthrough_sender`, or for a
whole SFU worker process with :func:`install_process_wide`.

Fragile by design: the receiver/sender subclasses touch aiortc's name-mangled
private state (see ``_RECEIVER_PRIVATE`` / ``_SENDER_PRIVATE``); the layout is
verified on first use so an aiortc upgrade fails loudly instead of decoding.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from typing import Any, Final

import aiortc.rtcpeerconnection
import av
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from av.frame import Frame

logger = logging.getLogger(__name__)

#: The only codecs the SFU forwards (nothing is ever transcoded).
FORWARDED_MIME_TYPES: Final[dict[str, str]] = {"audio": "audio/opus", "video": "video/VP8"}
OPUS_TIME_BASE: Final = fractions.Fraction(1, 48000)

_R: Final = "_RTCRtpReceiver__"
_S: Final = "_RTCRtpSender__"
#: aiortc-private (name-mangled) receiver attributes used by PassthroughReceiver.receive().
_RECEIVER_PRIVATE: Final = (
    "started",
    "codecs",
    "rtx_ssrc",
    "decoder_queue",
    "decoder_thread",
    "transport",
    "rtcp_task",
)
#: aiortc-private sender attributes used by PassthroughSender.
_SENDER_PRIVATE: Final = ("encoder",)

_background: set[asyncio.Future[Any]] = set()


def _check_layout(obj: object, prefix: str, names: tuple[str, ...]) -> None:
    missing = [prefix + name for name in names if not hasattr(obj, prefix + name)]
    if missing:
        raise RuntimeError(
            f"aiortc {aiortc.__version__} changed its private layout ({', '.join(missing)}); "
            "media.passthrough must be updated before it can be used"
        )


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def is_vp8_keyframe(data: bytes) -> bool:
    """True if ``data`` is a VP8 key frame (frame tag P bit clear + start code, RFC 6386)."""
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == b"\x9d\x01\x2a"


class _NoDecoderThread:
    """Stands in for aiortc's decoder thread: truthy, and ``join()`` is a no-op."""

    def join(self, timeout: float | None = None) -> None:
        return None


class _EncodedFrameSink:
    """Stands in for aiortc's decoder queue; runs in the event loop thread.

    aiortc's ``_handle_rtp_packet`` calls ``put((codec, JitterFrame))`` for every
    reassembled frame and ``__stop_decoder`` calls ``put(None)`` at the end.
    """

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue
        self.frames = 0
        self.keyframes = 0

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._queue.put_nowait(None)
            return
        codec, frame = item
        if not frame.data:
            return
        packet = av.Packet(frame.data)
        packet.opaque = time.monotonic()  # arrival stamp: forwarding measures its added delay
        packet.pts = frame.timestamp
        packet.dts = frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        if codec.mimeType.lower() == "video/vp8":
            packet.is_keyframe = is_vp8_keyframe(frame.data)
        else:
            packet.is_keyframe = True
        self.frames += 1
        self.keyframes += packet.is_keyframe
        self._queue.put_nowait(packet)


class PassthroughReceiver(RTCRtpReceiver):
    """An RTCRtpReceiver whose track yields encoded :class:`av.Packet` frames."""

    _media_ssrcs: list[int]
    plis_sent: int

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # Mirrors RTCRtpReceiver.receive() (aiortc 1.16) minus the decoder thread.
        if getattr(self, _R + "started"):
            return
        track = self._track
        if track is None:
            raise RuntimeError("PassthroughReceiver.receive() called before a track exists")
        codecs: dict[int, RTCRtpCodecParameters] = getattr(self, _R + "codecs")
        rtx_ssrc: dict[int, int] = getattr(self, _R + "rtx_ssrc")
        for codec in parameters.codecs:
            if codec.payloadType is not None:
                codecs[codec.payloadType] = codec
        for encoding in parameters.encodings:
            if encoding.rtx:
                rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        self._media_ssrcs = [e.ssrc for e in parameters.encodings if e.ssrc is not None]
        setattr(self, _R + "decoder_queue", _EncodedFrameSink(track._queue))
        setattr(self, _R + "decoder_thread", _NoDecoderThread())
        getattr(self, _R + "transport")._register_rtp_receiver(self, parameters)
        setattr(self, _R + "rtcp_task", asyncio.ensure_future(self._run_rtcp()))
        setattr(self, _R + "started", True)

    @property
    def frames_received(self) -> int:
        sink = getattr(self, _R + "decoder_queue")
        return sink.frames if isinstance(sink, _EncodedFrameSink) else 0

    def media_ssrc(self) -> int | None:
        """SSRC of the incoming media stream (from SDP, else the latest seen)."""
        if getattr(self, "_media_ssrcs", None):
            return self._media_ssrcs[0]
        rtx: dict[int, int] = getattr(self, _R + "rtx_ssrc")
        sources = [s for s in self.getSynchronizationSources() if s.source not in rtx]
        if not sources:
            return None
        return max(sources, key=lambda s: s.timestamp).source

    def request_keyframe(self) -> bool:
        """Send an RTCP PLI to the remote publisher (unthrottled; see forwarding)."""
        ssrc = self.media_ssrc()
        if ssrc is None:
            return False
        self.plis_sent = getattr(self, "plis_sent", 0) + 1
        _spawn(self._send_rtcp_pli(ssrc))
        return True


class Vp8Packer(Vp8Encoder):
    """aiortc's VP8 packetizer without the encoder: ``pack()`` only."""

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("pass-through sender received a raw frame; refusing to encode VP8")


class OpusPacker(Encoder):
    """Opus is one frame per RTP packet; ``pack()`` only (no libopus context)."""

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("pass-through sender received a raw frame; refusing to encode Opus")

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        assert packet.pts is not None
        return [bytes(packet)], convert_timebase(packet.pts, packet.time_base, OPUS_TIME_BASE)


def make_packer(codec: RTCRtpCodecParameters) -> Encoder:
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        return Vp8Packer()
    if mime == "audio/opus":
        return OpusPacker()
    raise ValueError(f"pass-through cannot forward {codec.mimeType}")


class PassthroughSender(RTCRtpSender):
    """An RTCRtpSender that only packetizes :class:`av.Packet` and relays PLI to its track."""

    keyframe_requests: int

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if getattr(self, _S + "encoder") is None and parameters.codecs:
            # RTCRtpSender._next_encoded_frame only calls get_encoder() when unset.
            setattr(self, _S + "encoder", make_packer(parameters.codecs[0]))
        await super().send(parameters)

    def _send_keyframe(self) -> None:
        # Called by RTCRtpSender._handle_rtcp_packet on PLI/FIR from the remote.
        self.keyframe_requests = getattr(self, "keyframe_requests", 0) + 1
        request = getattr(self.track, "request_keyframe", None)
        if callable(request):
            request()


def enable_passthrough_receiver(receiver: RTCRtpReceiver) -> PassthroughReceiver:
    """Convert ``receiver`` in place; must happen before aiortc calls ``receive()``."""
    if isinstance(receiver, PassthroughReceiver):
        return receiver
    _check_layout(receiver, _R, _RECEIVER_PRIVATE)
    if getattr(receiver, _R + "started"):
        raise RuntimeError("receiver already started; its decoder thread is running")
    receiver.__class__ = PassthroughReceiver
    assert isinstance(receiver, PassthroughReceiver)
    return receiver


def enable_passthrough_sender(sender: RTCRtpSender) -> PassthroughSender:
    """Convert ``sender`` in place; must happen before aiortc calls ``send()``."""
    if isinstance(sender, PassthroughSender):
        return sender
    _check_layout(sender, _S, _SENDER_PRIVATE)
    sender.__class__ = PassthroughSender
    assert isinstance(sender, PassthroughSender)
    return sender


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


def enable_passthrough(transceiver: RTCRtpTransceiver, *, receive: bool = True) -> None:
    if receive:
        enable_passthrough_receiver(transceiver.receiver)
    enable_passthrough_sender(transceiver.sender)


class PassthroughPeerConnection(RTCPeerConnection):
    """RTCPeerConnection whose transceivers forward encoded media only.

    ``receive=False`` keeps aiortc's decoding receivers (e.g. a client that wants
    decoded frames) while still sending pre-encoded packets and relaying PLI.
    """

    def __init__(self, *args: Any, receive: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._passthrough_receive = receive

    def _install(self) -> None:
        for transceiver in self.getTransceivers():
            enable_passthrough(transceiver, receive=self._passthrough_receive)

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
        await super().setLocalDescription(sessionDescription)


def install_process_wide() -> None:
    """Make every RTCPeerConnection in this process pass-through (SFU worker only).

    Replaces the classes aiortc.rtcpeerconnection instantiates. Codec restriction
    still needs :func:`restrict_codecs` (or use :class:`PassthroughPeerConnection`).
    """
    module: Any = aiortc.rtcpeerconnection
    module.RTCRtpReceiver = PassthroughReceiver
    module.RTCRtpSender = PassthroughSender
