"""An :class:`rtpkit.outlet.Outlet` over real aiortc peers on loopback (ICE, DTLS, SRTP keys):
the compiled sender and the pure-Python path put the same packets on the wire, and packets the
socket does not take still arrive, in order, through the transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from loadtest.send_path import connected_pair
from rtpkit import fastpath
from rtpkit.outlet import Outlet
from rtpkit.rtp import ABS_SEND_TIME_URI, MID_URI, ExtensionWriter, rtp_header
from tests.waiting import eventually

EXT = ExtensionWriter({MID_URI: 1, ABS_SEND_TIME_URI: 2}, "0").build(12.5)


@pytest.fixture
async def peers() -> AsyncIterator[tuple[RTCPeerConnection, RTCPeerConnection]]:
    sender, receiver = await connected_pair()
    try:
        yield sender, receiver
    finally:
        await sender.close()
        await receiver.close()


def capture(dtls: RTCDtlsTransport) -> list[bytes]:
    """Every SRTP datagram reaching ``dtls``, unprotected with its own receive session."""
    got: list[bytes] = []
    connection = dtls.transport._connection
    original = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        rx = fastpath._srtp(dtls, "_rx_srtp")
        if rx is not None and 127 < data[0] < 192 and not 191 < data[1] < 209:
            got.append(rx.unprotect(data))
        else:
            original(data, component)

    connection.data_received = data_received
    return got


def packets(first: int, count: int) -> list[tuple[int, bool, int, int, int, bytes, bytes]]:
    return [
        (
            96 if n % 3 else 111,
            n % 4 == 0,
            n & 0xFFFF,
            3000 * n,
            0x5EED,
            EXT if n % 2 else b"",
            b"p%d" % n * (n % 50),
        )
        for n in range(first, first + count)
    ]


async def test_compiled_and_python_outlets_put_the_same_packets_on_the_wire(
    peers: tuple[RTCPeerConnection, RTCPeerConnection],
) -> None:
    sender, receiver = peers
    got = capture(receiver.getTransceivers()[0].receiver.transport)
    dtls = sender.getTransceivers()[0].sender.transport
    compiled, python = Outlet(dtls), Outlet(dtls, compiled=False)
    sent = packets(1, 200)
    for i, fields in enumerate(sent):
        assert (compiled if i % 2 else python).send(*fields)
    assert compiled._c is not None and compiled._c.connected  # it really ran compiled
    assert python._c is None
    await eventually(lambda: len(got) >= len(sent), lambda: f"{len(got)} of {len(sent)} arrived")
    assert got == [rtp_header(*fields[:6]) + fields[6] for fields in sent]


async def test_packets_the_socket_does_not_take_arrive_through_the_transport_in_order(
    peers: tuple[RTCPeerConnection, RTCPeerConnection],
) -> None:
    sender, receiver = peers
    got = capture(receiver.getTransceivers()[0].receiver.transport)
    outlet = Outlet(sender.getTransceivers()[0].sender.transport)
    sent = packets(1, 100)
    assert all(outlet.send(*fields) for fields in sent[:10])
    assert outlet._c is not None
    outlet._c.disconnect()  # the compiled sender now hands every packet back, as on EAGAIN
    assert all(outlet.send(*fields) for fields in sent[10:60])
    assert outlet._backlog
    outlet._use_pair(outlet._pair)  # connected again: the next packets go straight out
    assert outlet._c.connected and not outlet._backlog
    assert all(outlet.send(*fields) for fields in sent[60:])
    await eventually(lambda: len(got) >= len(sent), lambda: f"{len(got)} of {len(sent)} arrived")
    assert got == [rtp_header(*fields[:6]) + fields[6] for fields in sent]


async def test_a_closed_transport_sends_nothing(
    peers: tuple[RTCPeerConnection, RTCPeerConnection],
) -> None:
    sender, _ = peers
    dtls = sender.getTransceivers()[0].sender.transport
    outlet = Outlet(dtls)
    assert outlet.send(*packets(1, 1)[0])
    await sender.close()
    assert not outlet.send(*packets(2, 1)[0])
    assert not Outlet(dtls, compiled=False).send(*packets(3, 1)[0])
