"""aiortc receiver and sender that move RTP packets, never frames.

:class:`ForwardingReceiver` replaces aiortc's receive path (jitter buffer, frame reassembly,
remote bitrate estimator, decoder thread) with one synchronous call per packet: RTCP receiver
statistics (for aiortc's receiver reports), RTX unwrapping, NACKs toward the remote sender for
its losses, key-frame detection from the VP8 payload descriptor, then ``on_packet(packet,
keyframe_start, arrival)``. It remembers the remote's latest sender report (lip sync
downstream) and sends PLI on request.

:class:`ForwardingSender` has no RTP loop and no encoder: :meth:`ForwardingSender.forward`
rewrites a packet for this stream (SSRC, payload type, sequence number and timestamp with
per-stream offsets that stay continuous when the source changes, this peer's header
extensions), keeps it in a history for NACK (answered with RTX where negotiated), protects and
sends it at once. :meth:`ForwardingSender.send_frame` does the same for locally packetized
frames (clients). It sends sender reports mapped onto the source's clock and relays PLI/FIR
through ``on_keyframe_request``.

Both are installed in place by :mod:`rtpkit.passthrough` before aiortc starts them; they rely
on aiortc-private state, verified on first use so an aiortc upgrade fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.clock import current_ntp_time
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
)

from rtpkit import fastpath
from rtpkit.latency import DelayHistogram
from rtpkit.nacks import Nacks
from rtpkit.outlet import Outlet, outlet
from rtpkit.reports import SenderReports
from rtpkit.rtp import ExtensionWriter, RtpIn, rtp_header, seq_delta, vp8_keyframe_start

log = logging.getLogger(__name__)

PacketSink = Callable[[RtpIn, bool, float], None]
HISTORY_SIZE: Final = 512  # ~2.5 s of 500 kbps video: enough for a few RTTs of NACKs

_R: Final = "_RTCRtpReceiver__"
_RECEIVER_PRIVATE: Final = (
    "started",
    "codecs",
    "rtx_ssrc",
    "remote_streams",
    "nack_generator",
    "transport",
    "rtcp_task",
    "lsr",
    "lsr_time",
    "rtcp_ssrc",
)


class ForwardingReceiver(RTCRtpReceiver):
    """A receiver that hands every RTP packet to ``on_packet``; see the module docstring."""

    on_packet: PacketSink | None
    _is_vp8: bool
    _media_ssrcs: list[int]
    plis_sent: int
    nacks_sent: int
    packets: int
    last_sr: tuple[int, int, float] | None  # (ntp, rtp timestamp, monotonic arrival)

    def _prepare(self) -> None:
        fastpath.check_private(self, tuple(_R + name for name in _RECEIVER_PRIVATE))
        self.on_packet = None
        self._is_vp8 = False
        self._media_ssrcs = []
        self._seen_ssrc: int | None = None  # of the latest media (not RTX) packet
        self.plis_sent = self.nacks_sent = self.packets = 0
        self.last_sr = None
        # Per payload type: (clock rate, original payload type if it is RTX else None).
        self._pt_info: dict[int, tuple[int, int | None]] = {}
        self._streams: dict[int, StreamStatistics] = getattr(self, _R + "remote_streams")
        self._rtx_ssrc: dict[int, int] = getattr(self, _R + "rtx_ssrc")
        if getattr(self, _R + "nack_generator") is not None:  # video: the same, cheaper
            setattr(self, _R + "nack_generator", Nacks())
        self._nacks: NackGenerator | None = getattr(self, _R + "nack_generator")

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # Mirrors RTCRtpReceiver.receive() (aiortc 1.16) minus the decoder thread.
        if getattr(self, _R + "started"):
            return
        codecs: dict[int, RTCRtpCodecParameters] = getattr(self, _R + "codecs")
        for codec in parameters.codecs:
            if codec.payloadType is not None:
                codecs[codec.payloadType] = codec
        for pt, codec in codecs.items():
            apt = codec.parameters.get("apt") if is_rtx(codec) else None
            if apt is None or apt in codecs:
                self._pt_info[pt] = (codec.clockRate, apt if isinstance(apt, int) else None)
        for encoding in parameters.encodings:
            if encoding.rtx:
                self._rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        self._media_ssrcs = [e.ssrc for e in parameters.encodings if e.ssrc is not None]
        self._is_vp8 = any(c.mimeType.lower() == "video/vp8" for c in parameters.codecs)
        transport = getattr(self, _R + "transport")
        fastpath.install(transport)
        fastpath.enlarge_socket_buffers(transport)
        transport._register_rtp_receiver(self, parameters)
        setattr(self, _R + "rtcp_task", asyncio.ensure_future(self._run_rtcp()))
        setattr(self, _R + "started", True)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        # Only if the fast path is not installed on this transport.
        fields = (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp)
        self.handle_rtp(RtpIn(*fields, packet.ssrc, packet.payload), time.monotonic())

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.handle_rtcp(packet)

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            self.last_sr = (info.ntp_timestamp, info.rtp_timestamp, time.monotonic())
            getattr(self, _R + "lsr")[packet.ssrc] = (info.ntp_timestamp >> 16) & 0xFFFFFFFF
            getattr(self, _R + "lsr_time")[packet.ssrc] = time.time()

    def handle_rtp(self, packet: RtpIn, arrival: float) -> None:
        info = self._pt_info.get(packet.payload_type)
        if info is None or not self._enabled:
            return
        stats = self._streams.get(packet.ssrc)
        if stats is None:
            stats = self._streams[packet.ssrc] = StreamStatistics(info[0])
        stats.add(packet)  # type: ignore[arg-type]  # reads sequence_number and timestamp
        apt = info[1]
        if apt is not None:  # RTX: unwrap to the original packet
            original = self._rtx_ssrc.get(packet.ssrc)
            if original is None and self._seen_ssrc is not None:  # no FID group in the SDP
                original = self._rtx_ssrc[packet.ssrc] = self._seen_ssrc
            if original is None or len(packet.payload) < 2:
                return
            packet = packet.unwrap_rtx(apt, original)
        elif packet.ssrc != self._seen_ssrc:
            self._seen_ssrc = packet.ssrc
        if not packet.payload:
            return  # padding-only (bandwidth probing): nothing to forward
        nacks = self._nacks
        if nacks is not None and nacks.add(packet):  # type: ignore[arg-type]
            self.nacks_sent += 1
            fastpath.spawn(self._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))
        self.packets += 1
        sink = self.on_packet
        if sink is not None:
            sink(packet, self._is_vp8 and vp8_keyframe_start(packet.payload), arrival)

    def media_ssrc(self) -> int | None:
        """SSRC of the incoming media stream (from SDP, else the latest seen)."""
        return self._media_ssrcs[0] if self._media_ssrcs else self._seen_ssrc

    def request_keyframe(self) -> bool:
        """Send an RTCP PLI to the remote sender (unthrottled; see forwarding)."""
        ssrc = self.media_ssrc()
        if ssrc is None or getattr(self, _R + "rtcp_ssrc") is None:
            return False
        if not getattr(self, _R + "started") or self.transport.state != "connected":
            return False  # it would be lost: the publisher asks again once media flows
        self.plis_sent += 1
        fastpath.spawn(self._send_rtcp_pli(ssrc))
        return True


class ForwardingSender(RTCRtpSender):
    """A sender of ready RTP packets; see the module docstring."""

    on_keyframe_request: Callable[[], None] | None
    on_ready: Callable[[], None] | None
    delay: DelayHistogram | None
    clock_source: Callable[[], tuple[int, int, float] | None] | None

    _outlet: Outlet

    def _prepare(self) -> None:
        self._dtls = self.transport
        self.stopped = False  # for good (its peer connection closed)
        self.on_keyframe_request = None
        self.on_ready = None
        self.delay = None
        self.clock_source = None  # the source's latest sender report (ntp, rtp ts, at)
        self._ready = False
        self._pt = 0
        self._rtx_pt: int | None = None
        self._clock_rate = 90000
        self._ext = ExtensionWriter({}, None)
        self._cname = ""
        self._history: list[tuple[int, int, bool, bytes] | None] = [None] * HISTORY_SIZE
        self._keep_history = False
        self._seq = random.randrange(0, 0x8000)  # low half: no early wrap (SRTP index)
        self._rtx_seq = random.randrange(0, 0x8000)
        self._ts = random.randrange(0, 1 << 32)
        self._seq_offset = 0
        self._ts_offset = 0
        self._rebase = True
        self._sent_at = 0.0
        self._guard_seq: int | None = None  # forwarded seq at the last rebase
        self._rtcp: asyncio.Task[None] | None = None
        self.packets_sent = 0
        self.octets_sent = 0
        self.retransmitted = 0
        self.nacks_received = 0
        self.keyframe_requests = 0
        self.sender_reports = 0
        self.reports = SenderReports()  # RTT, jitter, loss as the remote reports them

    # ------------------------------------------------------------------ aiortc lifecycle

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self._ready:
            return
        primary = parameters.codecs[0]
        self._pt = primary.payloadType or 0
        self._clock_rate = primary.clockRate
        for codec in parameters.codecs:
            if is_rtx(codec) and codec.parameters.get("apt") == primary.payloadType:
                self._rtx_pt = codec.payloadType
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        self._ext = ExtensionWriter(ids, parameters.muxId)
        self._cname = parameters.rtcp.cname or ""
        self._keep_history = self.kind == "video"
        self._dtls = self.transport
        fastpath.install(self._dtls)
        fastpath.enlarge_socket_buffers(self._dtls)
        self._outlet = outlet(self._dtls)
        self._dtls._register_rtp_sender(self, parameters)
        self._rtcp = asyncio.ensure_future(self._run_reports())
        self._ready = True
        if self.on_ready is not None:
            self.on_ready()

    async def stop(self) -> None:
        self.stopped = True
        if not self._ready:
            return
        self._ready = False
        self._dtls._unregister_rtp_sender(self)
        if self._rtcp is not None:
            self._rtcp.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rtcp
        fastpath.send_rtcp(self._dtls, bytes(RtcpByePacket(sources=[self._ssrc])))

    # ------------------------------------------------------------------ forwarding

    def restart(self) -> None:
        """The source changes: continue this stream's numbering from where it is."""
        self._rebase = True

    def forward(self, packet: RtpIn, arrival: float) -> bool:
        """Send a source packet rewritten for this stream; ``False`` if not sent."""
        if not self._ready:
            return False
        seq_in = packet.sequence_number
        if self._rebase:
            self._rebase = False
            self._seq_offset = (self._seq + 1 - seq_in) & 0xFFFF
            elapsed = int((arrival - self._sent_at) * self._clock_rate) if self._sent_at else 0
            self._ts_offset = (self._ts + max(1, elapsed) - packet.timestamp) & 0xFFFFFFFF
            self._guard_seq = (seq_in + self._seq_offset) & 0xFFFF
        seq = (seq_in + self._seq_offset) & 0xFFFF
        guard = self._guard_seq
        if guard is not None:
            ahead = seq_delta(seq, guard)
            if ahead < 0:
                return False  # reordered from before this stream (re)started
            if ahead > 1000:
                self._guard_seq = None
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        self._emit(seq, ts, bool(packet.marker), packet.payload, arrival)
        return True

    def send_frame(self, payloads: list[bytes], timestamp: int) -> bool:
        """Send one locally packetized frame (``timestamp`` in this stream's clock)."""
        if not self._ready:
            return False
        now = time.monotonic()
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            self._emit((self._seq + 1) & 0xFFFF, timestamp & 0xFFFFFFFF, i == last, payload, now)
        return True

    def _emit(self, seq: int, ts: int, marker: bool, payload: bytes, arrival: float) -> None:
        if seq_delta(seq, self._seq) > 0:
            self._seq = seq
            self._ts = ts
            self._sent_at = arrival
        if self._keep_history:
            self._history[seq % HISTORY_SIZE] = (seq, ts, marker, payload)
        # abs-send-time only needs a steady clock: the arrival stamp (sent right after it)
        ext = self._ext.build(arrival)
        if self._outlet.send(self._pt, marker, seq, ts, self._ssrc, ext, payload):
            self.packets_sent += 1
            self.octets_sent += len(payload)
            if self.delay is not None and not self.packets_sent & 3:  # a 1-in-4 sample
                self.delay.record(time.monotonic() - arrival)

    # ------------------------------------------------------------------ feedback

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.handle_rtcp(packet)

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacks_received += 1
            for seq in packet.lost:
                self._resend(seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.keyframe_requests += 1
            if self.on_keyframe_request is not None:
                self.on_keyframe_request()
        elif isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    self.reports.received(report, self._clock_rate, time.monotonic())

    def _resend(self, seq: int) -> None:
        entry = self._history[seq % HISTORY_SIZE]
        if entry is None or entry[0] != seq or not self._ready:
            return
        _, ts, marker, payload = entry
        ext = self._ext.build(time.monotonic())
        if self._rtx_pt is not None:
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            header = rtp_header(self._rtx_pt, marker, self._rtx_seq, ts, self._rtx_ssrc, ext)
            data = header + seq.to_bytes(2, "big") + payload
        else:
            data = rtp_header(self._pt, marker, seq, ts, self._ssrc, ext) + payload
        if fastpath.send_rtp(self._dtls, data):
            self.retransmitted += 1

    # ------------------------------------------------------------------ sender reports

    def sender_report(self) -> RtcpSrPacket:
        """An SR for this stream: the source's clock mapping if it sent one, else ours."""
        now = time.monotonic()
        source = self.clock_source() if self.clock_source is not None else None
        if source is not None and not self._rebase:
            ntp, rtp_ts, at = source
            elapsed = now - at
            ntp_out = ntp + int(elapsed * (1 << 32))
            rtp_out = rtp_ts + int(elapsed * self._clock_rate) + self._ts_offset
        else:
            ntp_out = current_ntp_time()
            rtp_out = self._ts + int((now - self._sent_at) * self._clock_rate)
        info = RtcpSenderInfo(
            ntp_timestamp=ntp_out & 0xFFFFFFFFFFFFFFFF,
            rtp_timestamp=rtp_out & 0xFFFFFFFF,
            packet_count=self.packets_sent & 0xFFFFFFFF,
            octet_count=self.octets_sent & 0xFFFFFFFF,
        )
        return RtcpSrPacket(ssrc=self._ssrc, sender_info=info)

    async def _run_reports(self) -> None:
        try:
            while True:
                await asyncio.sleep(0.5 + random.random())  # RFC 3550 randomised interval
                if not self.packets_sent:
                    continue
                sr = self.sender_report()
                report = bytes(sr)
                sdes = RtcpSdesPacket(
                    chunks=[RtcpSourceInfo(ssrc=self._ssrc, items=[(1, self._cname.encode())])]
                )
                if fastpath.send_rtcp(self._dtls, report + bytes(sdes)):
                    self.sender_reports += 1
                    self.reports.sent(sr.sender_info.ntp_timestamp, time.monotonic())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sender reports stopped")


def enable_receiver(receiver: RTCRtpReceiver) -> ForwardingReceiver:
    """Convert ``receiver`` in place; must happen before aiortc calls ``receive()``."""
    if isinstance(receiver, ForwardingReceiver):
        return receiver
    if getattr(receiver, _R + "started", False):
        raise RuntimeError("receiver already started; its decoder thread is running")
    receiver.__class__ = ForwardingReceiver
    assert isinstance(receiver, ForwardingReceiver)
    receiver._prepare()
    return receiver


def enable_sender(sender: RTCRtpSender) -> ForwardingSender:
    """Convert ``sender`` in place; must happen before aiortc calls ``send()``."""
    if isinstance(sender, ForwardingSender):
        return sender
    if getattr(sender, "_RTCRtpSender__started", False):
        raise RuntimeError("sender already started; its RTP loop is running")
    sender.__class__ = ForwardingSender
    assert isinstance(sender, ForwardingSender)
    sender._prepare()
    return sender
