"""The compiled sender (:mod:`rtpkit._srtpsend`) against pylibsrtp itself: the same key gives
the same SRTP bytes, so a twin session with that key is the reference. Real libsrtp, real
sockets on loopback; no peer connection.

This module imports the extension directly: where it was not built, these tests fail (the
product then sends through the pure-Python outlet, but the tests must say it was not built).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pylibsrtp import SRTP_MAX_TRAILER_LEN, Policy, Session
from pylibsrtp._binding import ffi

from rtpkit._srtpsend import Sender
from rtpkit.outlet import _PROTECT, COMPILED
from rtpkit.rtp import RtpIn, rtp_header

ROOM = 1400


def session(key: bytes) -> Session:
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True
    return Session(policy=policy)


def compiled(key: bytes) -> Sender:
    twin = session(key)
    return Sender(
        _PROTECT, int(ffi.cast("uintptr_t", twin._srtp[0])), twin, ROOM, SRTP_MAX_TRAILER_LEN
    )


@contextmanager
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


EXTENSIONS = st.sampled_from(
    [b"", b"\xbe\xde\x00\x01\x10\x30\x00\x00", b"\xbe\xde\x00\x02" + bytes(8)]
)


def test_it_is_built_here() -> None:
    assert COMPILED


@given(
    pt=st.integers(0, 127),
    marker=st.booleans(),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    ext=EXTENSIONS,
    payload=st.binary(max_size=1300),
)
def test_protect_gives_what_pylibsrtp_gives_for_the_packed_header(
    pt: int, marker: bool, seq: int, ts: int, ssrc: int, ext: bytes, payload: bytes
) -> None:
    key = os.urandom(30)
    plain = rtp_header(pt, marker, seq, ts, ssrc, ext) + payload
    assert compiled(key).protect(pt, marker, seq, ts, ssrc, ext, payload) == session(key).protect(
        plain
    )


def test_send_puts_the_protected_packet_on_the_socket() -> None:
    key = os.urandom(30)
    sender = compiled(key)
    reference = session(key)
    with udp_pair() as (out, into):
        assert sender.connect(out.fileno(), "127.0.0.1", into.getsockname()[1])
        assert sender.connected
        for seq in range(1, 6):
            assert (
                sender.send(96, seq == 5, seq, 3000 * seq, 0x5EED, b"", b"frame %d" % seq) is True
            )
            got = into.recv(2048)
            assert got == reference.protect(
                rtp_header(96, seq == 5, seq, 3000 * seq, 0x5EED, b"") + b"frame %d" % seq
            )
            assert RtpIn.parse(got[:12] + b"x").sequence_number == seq  # header in the clear


def test_what_the_socket_does_not_take_comes_back_protected() -> None:
    key = os.urandom(30)
    sender = compiled(key)
    # Not connected: every packet comes back, protected, for the transport.
    back = sender.send(96, False, 7, 1, 2, b"", b"payload")
    assert back == session(key).protect(rtp_header(96, False, 7, 1, 2, b"") + b"payload")
    # A socket that refuses the address (an AF_UNIX datagram socket): comes back too.
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        assert sender.connect(left.fileno(), "127.0.0.1", 9)
        assert isinstance(sender.send(96, False, 8, 1, 2, b"", b"payload"), bytes)
    finally:
        left.close()
        right.close()


def test_addresses_it_cannot_take_leave_it_disconnected() -> None:
    sender = compiled(os.urandom(30))
    with udp_pair() as (out, _):
        assert not sender.connect(out.fileno(), "localhost", 5000)  # names are not resolved
        assert not sender.connect(out.fileno(), "127.0.0.1", 0)
        assert not sender.connect(-1, "127.0.0.1", 5000)
        assert not sender.connected
        assert sender.connect(out.fileno(), "::1", 5000)  # IPv6 is numeric too


def test_bad_input_is_refused_and_nothing_is_sent() -> None:
    sender = compiled(os.urandom(30))
    with udp_pair() as (out, into):
        assert sender.connect(out.fileno(), "127.0.0.1", into.getsockname()[1])
        for fields in [
            (128, False, 1, 1, 1),
            (96, False, 0x10000, 1, 1),
            (96, False, -1, 1, 1),
            (96, False, 1, 1 << 32, 1),
            (96, False, 1, 1, -1),
        ]:
            with pytest.raises((ValueError, OverflowError)):
                sender.send(*fields, b"", b"x")
        with pytest.raises(TypeError):
            sender.send(96, False, 1, 1, 1, b"", bytearray(b"x"))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            sender.send(96, False, 1, 1, 1, b"")  # type: ignore[call-arg]
        assert sender.send(96, False, 1, 1, 1, b"", b"x" * ROOM) is False  # too long: dropped
        assert sender.protect(96, False, 1, 1, 1, b"", b"x" * ROOM) is None
        into.setblocking(False)
        with pytest.raises(BlockingIOError):
            into.recv(2048)  # nothing reached the socket


def test_it_refuses_null_pointers_and_odd_sizes() -> None:
    twin = session(os.urandom(30))
    pointer = int(ffi.cast("uintptr_t", twin._srtp[0]))
    with pytest.raises(ValueError):
        Sender(0, pointer, twin, ROOM, SRTP_MAX_TRAILER_LEN)
    with pytest.raises(ValueError):
        Sender(_PROTECT, 0, twin, ROOM, SRTP_MAX_TRAILER_LEN)
    with pytest.raises(ValueError):
        Sender(_PROTECT, pointer, twin, 4, SRTP_MAX_TRAILER_LEN)
