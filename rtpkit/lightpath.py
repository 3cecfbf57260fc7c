"""An opt-in receive path for load generators: count from the clear RTP header, decrypt a sample.

SRTP (RFC 3711) encrypts only the payload: the RTP header (payload type, marker, sequence
number, timestamp, SSRC) travels in the clear, authenticated but readable. A load generator
that must count packets, losses and frames for hundreds of streams does not need to decrypt
and authenticate every packet to do so; it needs real payloads only where the content is
looked at. :func:`install_light` puts one :class:`~aiortc.rtcdtlstransport.RTCDtlsTransport`
on such a path (instead of :func:`rtpkit.fastpath.install`):

* every ``sample_every``-th RTP datagram of the transport, every datagram whose receiver asks
  for it (:meth:`LightReceiver.handle_header` returns ``False``: RTX, which carries its
  original sequence number in the payload; a packet its :class:`HeaderSink` wants in the
  clear, e.g. the first packet of each video frame, which says whether it is a key frame),
  every RTCP datagram and every packet of an SSRC not yet routed is **unprotected for real**
  (decrypt + authentication + replay check): a forged or damaged one is dropped and counted
  in :attr:`LightStats.rejected`, then it takes :class:`rtpkit.endpoints.ForwardingReceiver`'s
  full path;
* every other RTP datagram is counted from its header alone: receiver statistics (for RTCP
  receiver reports), NACKs and the sink's counts are the same as on the full path.

So authentication is only *sampled* here: a tampered packet that is not sampled is counted as
received. That is for benchmark clients only; the SFU and real clients never install this.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpPacket, RtpPacket
from pylibsrtp import Error as SrtpError

from rtpkit import fastpath
from rtpkit.endpoints import ForwardingReceiver
from rtpkit.rtp import RtpIn

_LIGHT_MARK: Final = "_visitation_light_path"
_HEADER: Final = struct.Struct("!BBHII")
DEFAULT_SAMPLE_EVERY: Final = 16


class HeaderSink(Protocol):
    """A sink that can count a packet from its header (``client.header_sink.HeaderSink``)."""

    def on_header(self, seq: int, timestamp: int, marker: int, arrival: float) -> bool:
        """Count a packet whose payload stays encrypted; ``False`` (nothing counted) if this
        packet is wanted in the clear instead."""
        ...


@dataclass
class LightStats:
    """One transport's light path: datagrams seen, unprotected, and rejected by SRTP."""

    sample_every: int
    datagrams: int = 0  # RTP datagrams (RTCP is always unprotected, not counted here)
    decrypted: int = 0  # RTP datagrams unprotected and authenticated
    rejected: int = 0  # unprotect failed: forged, tampered or replayed


class LightReceiver(ForwardingReceiver):
    """A :class:`ForwardingReceiver` that also takes packets counted from their header."""

    header_sink: HeaderSink | None
    header_only: int
    _scratch: RtpIn

    def handle_header(
        self, payload_type: int, marker: int, seq: int, timestamp: int, ssrc: int, arrival: float
    ) -> bool:
        """Count one packet without its payload; ``False`` if it must be unprotected first."""
        info = self._pt_info.get(payload_type)
        sink = self.header_sink
        if info is None or info[1] is not None or sink is None or not self._enabled:
            return False  # unknown or RTX payload type: the full path decides
        if not sink.on_header(seq, timestamp, marker, arrival):
            return False
        header = self._scratch  # what the statistics and the NACK generator read
        header.sequence_number, header.timestamp = seq, timestamp
        stats = self._streams.get(ssrc)
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(info[0])
        stats.add(header)  # type: ignore[arg-type]  # reads sequence_number and timestamp
        if ssrc != self._seen_ssrc:
            self._seen_ssrc = ssrc
        nacks = self._nacks
        if nacks is not None and nacks.add(header):  # type: ignore[arg-type]
            self.nacks_sent += 1
            fastpath.spawn(self._send_rtcp_nack(ssrc, sorted(nacks.missing)))
        self.packets += 1
        self.header_only += 1
        return True


def enable_light_receiver(receiver: ForwardingReceiver, sink: HeaderSink) -> LightReceiver:
    """Turn a (not yet started) forwarding receiver into a :class:`LightReceiver` feeding
    ``sink`` (which also gets the unprotected packets, through ``on_packet``)."""
    receiver.__class__ = LightReceiver
    assert isinstance(receiver, LightReceiver)
    receiver.header_sink = sink
    receiver.header_only = 0
    receiver._scratch = RtpIn(0, 0, 0, 0, 0, b"")
    return receiver


def light_stats(dtls: RTCDtlsTransport) -> LightStats | None:
    """The counters of ``dtls``'s light path (None if it is not on one)."""
    stats = getattr(dtls, _LIGHT_MARK, None)
    return stats if isinstance(stats, LightStats) else None


def install_light(dtls: RTCDtlsTransport, sample_every: int = DEFAULT_SAMPLE_EVERY) -> LightStats:
    """Put ``dtls`` on the light receive path (idempotent; before :func:`fastpath.install`,
    which it then leaves alone). Sending is unchanged (:func:`fastpath.send_rtp`)."""
    existing = light_stats(dtls)
    if existing is not None:
        return existing
    if getattr(dtls, fastpath._MARK, False):
        raise RuntimeError("transport already on the full fast path; install_light comes first")
    if sample_every < 1:
        raise ValueError("sample_every must be >= 1")
    fastpath.check_private(dtls, ("_rtp_router", "_rtp_header_extensions_map", "transport"))
    fastpath.check_private(dtls._rtp_router, ("ssrc_table", "mid_table", "senders", "route_rtp"))
    connection = dtls.transport._connection
    fastpath.check_private(connection, ("data_received", "_nominated"))
    fastpath._patch_stun_protocol()
    queued: Callable[[bytes, int], None] = connection.data_received
    router = dtls._rtp_router
    ssrc_table: dict[int, Any] = router.ssrc_table
    stats = LightStats(sample_every)
    clock = time.monotonic
    unpack = _HEADER.unpack_from

    def data_received(data: bytes, component: int) -> None:
        rx = fastpath._srtp(dtls, "_rx_srtp")
        if rx is None or not 127 < data[0] < 192:
            queued(data, component)  # DTLS (and anything before keys exist): aiortc's way
            return
        arrival = clock()
        if len(data) > 1 and 191 < data[1] < 209:  # RTCP: aiortc.rtp.is_rtcp, inlined
            try:
                fastpath._deliver_rtcp(router, RtcpPacket.parse(rx.unprotect_rtcp(data)))
            except (SrtpError, ValueError):
                pass  # as the full path: dropped
            return
        if len(data) < 12:
            return
        first, second, seq, timestamp, ssrc = unpack(data)
        stats.datagrams += 1
        receiver = ssrc_table.get(ssrc)
        if (
            receiver is not None
            and stats.datagrams % sample_every
            and not first & 0x20  # padding: its length is in the encrypted part
            and type(receiver) is LightReceiver
            and receiver.handle_header(second & 0x7F, second >> 7, seq, timestamp, ssrc, arrival)
        ):
            return
        try:
            plain = rx.unprotect(data)
        except (SrtpError, ValueError):
            stats.rejected += 1
            return
        stats.decrypted += 1
        try:
            packet = RtpIn.parse(plain)
        except ValueError:
            return
        if receiver is None:
            receiver = fastpath._route_new_ssrc(dtls, router, plain)
            if receiver is None:
                return
        handle = getattr(receiver, "handle_rtp", None)
        if handle is not None:
            handle(packet, arrival)
        else:
            aiortc_packet = RtpPacket.parse(plain, dtls._rtp_header_extensions_map)
            fastpath.spawn(
                receiver._handle_rtp_packet(aiortc_packet, arrival_time_ms=int(arrival * 1000))
            )

    connection.data_received = data_received  # type: ignore[method-assign]
    setattr(dtls, _LIGHT_MARK, stats)
    setattr(dtls, fastpath._MARK, True)  # fastpath.install() leaves this transport alone
    return stats
