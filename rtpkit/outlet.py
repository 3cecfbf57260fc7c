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

:func:`outlet` returns the transport's outlet (one per transport, shared by its senders).
Touches aiortc/aioice/pylibsrtp private state, checked like :mod:`rtpkit.fastpath`.
"""

from __future__ import annotations

from typing import Any, Final

from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from pylibsrtp import SRTP_MAX_TRAILER_LEN, Session
from pylibsrtp._binding import ffi, lib

from rtpkit import fastpath

_ATTR: Final = "_visitation_outlet"
_CONNECTED: Final = State.CONNECTED


class Outlet:
    """Protect and send one transport's RTP packets; see the module docstring."""

    __slots__ = (
        "_addr",
        "_buffer",
        "_cdata",
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

    def __init__(self, dtls: RTCDtlsTransport) -> None:
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

    def send_rtp(self, packet: bytes) -> bool:
        """Protect and send one RTP packet now; ``False`` if the transport cannot send yet."""
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
        size = len(packet)
        if size > self._room:
            return False
        buffer, length = self._buffer, self._length
        buffer[0:size] = packet
        length[0] = size
        if lib.srtp_protect(self._srtp, self._cdata, length):
            return False  # as fastpath: an SRTP error drops the packet
        protected: bytes = buffer[0 : length[0]]
        sendto = self._sendto
        if sendto is None:
            return fastpath._send(dtls, protected)  # TURN, ICE-TCP or no pair yet
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

    def _use_pair(self, pair: Any) -> None:
        self._pair = pair
        transport = None if pair is None else fastpath.direct_udp(pair)
        self._transport = transport
        self._sendto = None if transport is None else transport.sendto
        self._addr = None if transport is None else pair.remote_addr


def outlet(dtls: RTCDtlsTransport) -> Outlet:
    """``dtls``'s outlet (made on first use)."""
    found: Outlet | None = getattr(dtls, _ATTR, None)
    if found is None:
        found = Outlet(dtls)
        setattr(dtls, _ATTR, found)
    return found
