"""One transport's RTP going out, in one call per packet: protect and hand to the socket.

:func:`rtpkit.fastpath.send_rtp` finds, for every packet, the transport's SRTP session
(two ``getattr``), its selected ICE pair (four attribute hops), the pair's kind of transport
(two type checks) and its address (a property that builds a tuple), through four Python
calls. An SFU sends every packet it receives to two or three transports, so that is most of
the Python it runs per packet. An :class:`Outlet` keeps what those lookups found and only
re-checks, per packet, that it still holds: the same session object (new DTLS keys are picked
up at once), the same selected pair (ICE may select another), the transport connected and
its socket open. A direct UDP pair is then one ``sendto``; anything else (a TURN relay,
ICE-TCP, no pair yet) takes :func:`rtpkit.fastpath._send`, as before.

:meth:`Outlet.send` takes the packet as header fields and payload. Where the compiled
:mod:`rtpkit._srtpsend` is built (``pip install`` compiles it; it is optional;
``VISITATION_PURE_PYTHON=1`` turns it off), it writes the header and payload into one buffer,
protects it in place with the same libsrtp session and sends it on the socket's descriptor,
allocating nothing; a packet the socket does not take at once goes to the transport (which
queues it), and later ones follow it there until its queue is empty, so the order holds. Without the extension, :meth:`Outlet.send` packs the header and
takes :meth:`Outlet.send_rtp`, the pure-Python path (the reference the tests hold it to).

:func:`outlet` returns the transport's outlet (one per transport, shared by its senders).
Touches aiortc/aioice/pylibsrtp private state, checked like :mod:`rtpkit.fastpath`.
"""

from __future__ import annotations

import os
from typing import Any, Final

from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from pylibsrtp import SRTP_MAX_TRAILER_LEN, Session
from pylibsrtp._binding import ffi, lib

from rtpkit import fastpath
from rtpkit.rtp import rtp_header

try:
    from rtpkit._srtpsend import Sender
except ImportError:  # not compiled here (no C compiler): the pure-Python path
    Sender = None  # type: ignore[assignment,misc]

_ATTR: Final = "_visitation_outlet"
_CONNECTED: Final = State.CONNECTED
#: Whether :meth:`Outlet.send` runs compiled (:mod:`rtpkit._srtpsend`): where it is built and
#: ``VISITATION_PURE_PYTHON`` is not ``1`` (which keeps every outlet on the pure-Python path).
COMPILED: Final = Sender is not None and os.environ.get("VISITATION_PURE_PYTHON", "") != "1"
_PROTECT: Final = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))


class Outlet:
    """Protect and send one transport's RTP packets; see the module docstring."""

    __slots__ = (
        "_addr",
        "_backlog",
        "_buffer",
        "_c",
        "_cdata",
        "_compiled",
        "_dtls",
        "_length",
        "_nominated",
        "_pair",
        "_room",
        "_sendto",
        "_session",
        "_srtp",
        "_transport",
    )

    def __init__(self, dtls: RTCDtlsTransport, *, compiled: bool = True) -> None:
        """``compiled=False`` keeps this outlet on the pure-Python path (for comparisons)."""
        fastpath.check_private(dtls, ("_state", "_tx_srtp", "transport"))
        connection = dtls.transport._connection
        fastpath.check_private(connection, ("_nominated",))
        self._dtls = dtls
        self._nominated: dict[int, Any] = connection._nominated
        self._session: Session | None = None
        self._srtp: Any = None
        self._cdata: Any = None
        self._buffer: Any = None
        self._room = 0
        self._length = ffi.new("int *")
        self._pair: Any = None
        self._transport: Any = None
        self._sendto: Any = None  # the pair's transport.sendto when it is direct UDP
        self._addr: tuple[Any, ...] | None = None
        self._compiled = compiled and COMPILED
        self._c: Sender | None = None  # the compiled sender of this session, where built
        self._backlog = False  # the transport holds packets the socket did not take

    def send(
        self,
        payload_type: int,
        marker: bool,
        seq: int,
        timestamp: int,
        ssrc: int,
        ext: bytes,
        payload: bytes,
    ) -> bool:
        """Send one RTP packet given as header fields (no CSRC, no padding), its header
        extensions (``ext``, may be empty) and payload; ``False`` if it was not sent."""
        if not self._check():
            return False
        c = self._c
        if c is None:  # not compiled here
            return self._protect_and_send(
                rtp_header(payload_type, marker, seq, timestamp, ssrc, ext) + payload
            )
        sendto = self._sendto
        if sendto is not None:  # a direct UDP pair
            transport = self._transport
            if transport.is_closing():
                return False
            if self._backlog and not transport.get_write_buffer_size():
                self._backlog = False
            if not self._backlog:
                result = c.send(payload_type, marker, seq, timestamp, ssrc, ext, payload)
                if result is True or result is False:
                    return result
                sendto(result, self._addr)  # the socket did not take it: the transport queues it
                self._backlog = True
                return True
        # TURN, ICE-TCP, no pair yet, or behind what the transport holds: protected, handed on
        protected = c.protect(payload_type, marker, seq, timestamp, ssrc, ext, payload)
        return protected is not None and self._hand(protected)

    def send_rtp(self, packet: bytes) -> bool:
        """Protect and send one RTP packet now; ``False`` if the transport cannot send yet."""
        return self._check() and self._protect_and_send(packet)

    def _check(self) -> bool:
        """Whether the transport can send; picks up a new session or selected pair."""
        dtls = self._dtls
        if dtls._state is not _CONNECTED:
            return False
        session = dtls._tx_srtp
        if session is not self._session:
            if session is None:
                return False
            self._use_session(session)
        pair = self._nominated.get(1)
        if pair is not self._pair:
            self._use_pair(pair)
        return True

    def _protect_and_send(self, packet: bytes) -> bool:
        """The pure-Python path: protect in pylibsrtp's buffer through cffi, then send."""
        size = len(packet)
        if size > self._room:
            return False
        buffer, length = self._buffer, self._length
        buffer[0:size] = packet
        length[0] = size
        if lib.srtp_protect(self._srtp, self._cdata, length):
            return False  # as fastpath: an SRTP error drops the packet
        return self._hand(buffer[0 : length[0]])

    def _hand(self, protected: bytes) -> bool:
        """A protected packet to the pair's transport (the socket, else fastpath's way)."""
        sendto = self._sendto
        if sendto is None:
            return fastpath._send(self._dtls, protected)  # TURN, ICE-TCP or no pair yet
        if self._transport.is_closing():
            return False
        sendto(protected, self._addr)
        return True

    def _use_session(self, session: Session) -> None:
        tx = fastpath._srtp(self._dtls, "_tx_srtp")  # the one reader of pylibsrtp's layout
        assert tx is not None and tx.session is session
        self._session = session
        self._srtp, self._cdata, self._buffer = tx._srtp, tx._cdata, tx._buffer
        self._room = tx._room - SRTP_MAX_TRAILER_LEN
        if self._compiled:
            pointer = int(ffi.cast("uintptr_t", tx._srtp))
            self._c = Sender(_PROTECT, pointer, tx, self._room, SRTP_MAX_TRAILER_LEN)
            self._connect()

    def _use_pair(self, pair: Any) -> None:
        self._pair = pair
        transport = None if pair is None else fastpath.direct_udp(pair)
        self._transport = transport
        self._sendto = None if transport is None else transport.sendto
        self._addr = None if transport is None else pair.remote_addr
        self._connect()

    def _connect(self) -> None:
        """Point the compiled sender at the pair's socket and address (if it is direct UDP)."""
        c, transport, addr = self._c, self._transport, self._addr
        if c is None:
            return
        self._backlog = False
        fd = -1
        if transport is not None and addr is not None:
            sock = transport.get_extra_info("socket")
            fd = sock.fileno() if sock is not None else -1
        if fd < 0 or not c.connect(fd, str(addr[0]), int(addr[1])):  # type: ignore[index]
            c.disconnect()  # send() hands every packet back, for the transport


def outlet(dtls: RTCDtlsTransport) -> Outlet:
    """``dtls``'s outlet (made on first use)."""
    found: Outlet | None = getattr(dtls, _ATTR, None)
    if found is None:
        found = Outlet(dtls)
        setattr(dtls, _ATTR, found)
    return found
