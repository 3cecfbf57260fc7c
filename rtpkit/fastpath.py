"""A synchronous SRTP path under aiortc: packets in and out without queues or tasks.

aiortc delivers every datagram through aioice's ``asyncio.Queue`` to a per-transport task that
unprotects, parses and routes it with several awaits, and sends through a chain of four
coroutines. For an SFU forwarding thousands of packets a second that is most of the cost, and
the queue is where packets wait when the loop is busy. This module keeps aiortc for ICE,
DTLS, SRTP keys, SDP and RTCP semantics and only shortens the data path:

* :func:`install` on an :class:`~aiortc.rtcdtlstransport.RTCDtlsTransport` makes its ICE
  connection handle SRTP/SRTCP datagrams *in the datagram callback*: unprotect, parse (the
  lean :class:`rtpkit.rtp.RtpIn`), route by SSRC to the receiver (or sender, for RTCP) and call
  its synchronous handler (``handle_rtp(packet, arrival)`` / ``handle_rtcp(packet)``) when it
  has one, else schedule aiortc's own coroutine (plain receivers keep working). DTLS and anything else still take
  aiortc's queue. ``arrival`` is ``time.monotonic()`` when the datagram came off the socket.
* :func:`send_rtp` / :func:`send_rtcp` protect and hand one packet to the selected ICE pair's
  socket at once (UDP), to its TURN transport (a relayed candidate), or schedule aioice's own
  send (ICE-TCP).
* STUN is tried first on every datagram by aioice; :func:`install` also teaches aioice's UDP
  protocol to skip that for RTP/RTCP (first byte 128-191, never STUN).

Touches aiortc/aioice private state (checked on first use so an upgrade fails loudly).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import aioice.ice
import aioice.turn
import aiortc
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)
from pylibsrtp import SRTP_MAX_SRTCP_TRAILER_LEN, SRTP_MAX_TRAILER_LEN, Session
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi, lib

from rtpkit.rtp import RtpIn

log = logging.getLogger(__name__)

_MARK: Final = "_visitation_fast_path"
_background: set[asyncio.Future[Any]] = set()
_stun_patched = False


class _Srtp:
    """pylibsrtp's ``Session.protect``/``unprotect`` minus its per-call wrapper work (a new
    length cell, type checks, two method hops): the same C calls on the session's buffer."""

    __slots__ = ("_buffer", "_cdata", "_length", "_room", "_srtp", "session")

    def __init__(self, session: Session) -> None:
        self.session = session  # keeps the C session alive
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._room = len(session._buffer)
        self._length = ffi.new("int *")

    def _run(self, data: bytes, func: Any, trailer: int) -> bytes:
        size = len(data)
        if size > self._room - trailer:
            raise ValueError("packet is too long")
        self._buffer[0:size] = data
        self._length[0] = size
        if func(self._srtp, self._cdata, self._length):
            raise SrtpError("SRTP processing failed")
        return self._buffer[0 : self._length[0]]  # type: ignore[no-any-return]

    def protect(self, data: bytes) -> bytes:
        return self._run(data, lib.srtp_protect, SRTP_MAX_TRAILER_LEN)

    def protect_rtcp(self, data: bytes) -> bytes:
        return self._run(data, lib.srtp_protect_rtcp, SRTP_MAX_SRTCP_TRAILER_LEN)

    def unprotect(self, data: bytes) -> bytes:
        return self._run(data, lib.srtp_unprotect, 0)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._run(data, lib.srtp_unprotect_rtcp, 0)


def _srtp(dtls: RTCDtlsTransport, name: str) -> _Srtp | None:
    """The fast wrapper of ``dtls``'s ``_rx_srtp``/``_tx_srtp`` session (None before keys)."""
    session = getattr(dtls, name)
    if session is None:
        return None
    cached: _Srtp | None = getattr(dtls, "_visitation" + name, None)
    if cached is None or cached.session is not session:
        cached = _Srtp(session)
        setattr(dtls, "_visitation" + name, cached)
    return cached


def spawn(coro: Any) -> None:
    """Run ``coro`` in the background, keeping a reference until it ends."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def check_private(obj: object, names: tuple[str, ...]) -> None:
    """Fail loudly (not by decoding, or dropping media) if an aiortc/aioice upgrade moved
    private state that the fast path relies on."""
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise RuntimeError(
            f"aiortc {aiortc.__version__}/aioice private layout changed ({', '.join(missing)}); "
            "rtpkit.fastpath and rtpkit.endpoints must be updated before they can be used"
        )


def _patch_stun_protocol() -> None:
    """aioice parses every datagram as STUN first (an exception per RTP packet): skip that."""
    global _stun_patched
    if _stun_patched:
        return
    original = aioice.ice.StunProtocol.datagram_received

    def datagram_received(self: Any, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if isinstance(data, bytes) and data and 127 < data[0] < 192:  # RTP/RTCP (RFC 7983)
            self.receiver.data_received(data, self.local_candidate.component)
        else:
            original(self, data, addr)

    aioice.ice.StunProtocol.datagram_received = datagram_received  # type: ignore[method-assign]
    _stun_patched = True


SOCKET_BUFFER_BYTES: Final = 4 << 20  # ~1 s of a busy worker's media (capped by the kernel)


def enlarge_socket_buffers(dtls: RTCDtlsTransport) -> None:
    """Give the ICE sockets room for a burst while the loop is busy (the default ~200 KB is
    50 ms of 25 calls: a short stall would drop packets in the kernel). Idempotent."""
    connection = dtls.transport._connection
    done: set[int] = connection.__dict__.setdefault("_visitation_buffers", set())
    for protocol in getattr(connection, "_protocols", ()):
        transport = getattr(protocol, "transport", None)
        if transport is None or id(protocol) in done:
            continue
        done.add(id(protocol))
        sock = transport.get_extra_info("socket")
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                if sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER_BYTES:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
            except (OSError, AttributeError) as exc:
                log.debug("cannot enlarge a socket buffer: %s", exc)


def install(dtls: RTCDtlsTransport) -> None:
    """Route ``dtls``'s SRTP/SRTCP synchronously (idempotent; before media flows)."""
    if getattr(dtls, _MARK, False):
        return
    check_private(dtls, ("_rtp_router", "_rtp_header_extensions_map", "_state", "transport"))
    check_private(dtls._rtp_router, ("ssrc_table", "mid_table", "senders", "route_rtp"))
    connection = dtls.transport._connection
    check_private(connection, ("data_received", "_nominated"))
    _patch_stun_protocol()
    queued: Callable[[bytes, int], None] = connection.data_received
    router = dtls._rtp_router
    ssrc_table: dict[int, Any] = router.ssrc_table
    clock = time.monotonic

    def data_received(data: bytes, component: int) -> None:
        rx = _srtp(dtls, "_rx_srtp")
        if rx is None or not 127 < data[0] < 192:
            queued(data, component)  # DTLS (and anything before keys exist): aiortc's way
            return
        arrival = clock()
        try:
            if is_rtcp(data):
                _deliver_rtcp(router, RtcpPacket.parse(rx.unprotect_rtcp(data)))
                return
            plain = rx.unprotect(data)
            packet = RtpIn.parse(plain)
        except (SrtpError, ValueError):
            return  # replayed, forged or malformed: dropped, as aiortc does
        receiver = ssrc_table.get(packet.ssrc)
        if receiver is None:
            receiver = _route_new_ssrc(dtls, router, plain)
            if receiver is None:
                return
        handle = getattr(receiver, "handle_rtp", None)
        if handle is not None:
            handle(packet, arrival)
        else:
            aiortc_packet = RtpPacket.parse(plain, dtls._rtp_header_extensions_map)
            spawn(receiver._handle_rtp_packet(aiortc_packet, arrival_time_ms=int(arrival * 1000)))

    connection.data_received = data_received  # type: ignore[method-assign]
    setattr(dtls, _MARK, True)


def _route_new_ssrc(dtls: RTCDtlsTransport, router: Any, plain: bytes) -> Any:
    """The receiver of an SSRC the SDP did not list: by its MID header extension (RFC 8843
    section 9.2: m-lines sharing a transport may even share payload types), else by payload
    type (aiortc's router). Remembered for the SSRC's next packets."""
    try:
        packet = RtpPacket.parse(plain, dtls._rtp_header_extensions_map)
    except ValueError:
        return None
    mid = packet.extensions.mid
    receiver = router.mid_table.get(mid) if mid else None
    if receiver is None:
        return router.route_rtp(packet)
    router.ssrc_table[packet.ssrc] = receiver
    return receiver


def _deliver_rtcp(router: Any, packets: list[Any]) -> None:
    """aiortc's ``RtpRouter.route_rtcp`` without its per-call typing work, then delivery."""
    receivers: dict[int, Any] = router.ssrc_table
    senders: dict[int, Any] = router.senders
    for packet in packets:
        recipients: list[Any] = []
        if isinstance(packet, RtcpSrPacket):
            recipients.append(receivers.get(packet.ssrc))
        elif isinstance(packet, RtcpByePacket):
            recipients += [receivers.get(source) for source in packet.sources]
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            recipients += [senders.get(report.ssrc) for report in packet.reports]
        elif isinstance(packet, RtcpPsfbPacket | RtcpRtpfbPacket):
            recipients.append(senders.get(packet.media_ssrc))  # REMB (media ssrc 0): ignored
        for recipient in dict.fromkeys(r for r in recipients if r is not None):
            handle = getattr(recipient, "handle_rtcp", None)
            if handle is not None:
                handle(packet)
            else:
                spawn(recipient._handle_rtcp_packet(packet))


def direct_udp(pair: Any) -> Any | None:
    """The UDP transport of a selected ``pair`` whose packets go straight to its socket (not a
    TURN relay, not ICE-TCP; it may be closing), else None."""
    protocol = pair.protocol
    if type(protocol) is not aioice.ice.StunProtocol:
        return None
    transport = protocol.transport
    if transport is None or isinstance(transport, aioice.turn.TurnTransport):
        return None
    return transport


def _send(dtls: RTCDtlsTransport, protected: bytes) -> bool:
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return False
    protocol = pair.protocol
    if type(protocol) is not aioice.ice.StunProtocol:  # ICE-TCP: aioice frames it
        spawn(protocol.send_data(protected, pair.remote_addr))
        return True
    transport = protocol.transport
    if transport is None:
        return False
    if isinstance(transport, aioice.turn.TurnTransport):
        # A relayed candidate (TURN over UDP or TCP): its transport sends over a channel
        # (binding it first if need be), in order, and drops what comes after its close.
        transport.sendto(protected, pair.remote_addr)
    elif transport.is_closing():
        return False
    else:
        transport.sendto(protected, pair.remote_addr)
    return True


def _protect_and_send(dtls: RTCDtlsTransport, packet: bytes, rtcp: bool) -> bool:
    tx = _srtp(dtls, "_tx_srtp")
    if tx is None or dtls._state is not State.CONNECTED:
        return False
    try:
        return _send(dtls, tx.protect_rtcp(packet) if rtcp else tx.protect(packet))
    except (SrtpError, ValueError):
        return False


def send_rtp(dtls: RTCDtlsTransport, packet: bytes) -> bool:
    """Protect and send one RTP packet now; ``False`` if the transport cannot send yet."""
    return _protect_and_send(dtls, packet, False)


def send_rtcp(dtls: RTCDtlsTransport, packet: bytes) -> bool:
    """Protect and send one (compound) RTCP packet now."""
    return _protect_and_send(dtls, packet, True)
