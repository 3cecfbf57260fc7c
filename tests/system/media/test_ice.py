"""The SFU's ICE on real networks: port range, announced address (issue 11's "Done when")."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from aiortc.sdp import candidate_from_sdp

from client.peer import PartyPeer
from core.ports import PortPool, PortRange, PortsExhausted, capacity_error, ports_per_call
from media.control import CAPACITY, ControlError
from media.ice import IcePorts, NetworkConnection, check_aioice
from media.room import Room
from tests.system.media.peers import BLUE, RED, see_each_other

ANNOUNCED = "198.51.100.7"


def candidates(sdp: str) -> list[tuple[str, int, str]]:
    """(address, port, type) of every ``a=candidate`` line."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            c = candidate_from_sdp(line[len("a=candidate:") :])
            found.append((c.ip, c.port, c.type))
    return found


def without(sdp: str, address: str) -> str:
    """``sdp`` minus its candidates on ``address``."""
    lines = sdp.splitlines(keepends=True)
    return "".join(x for x in lines if not (x.startswith("a=candidate:") and f" {address} " in x))


def test_port_range_parses_splits_and_counts() -> None:
    ports = PortRange.parse("40000-40199")
    assert (ports.first, ports.last, ports.size, str(ports)) == (40000, 40199, 200, "40000-40199")
    assert [str(s) for s in PortRange.parse("100-109").split(3)] == [
        "100-103",
        "104-106",
        "107-109",
    ]
    assert PortRange.parse("5000") == PortRange(5000, 5000)
    for bad in ("", "a-b", "10-5", "0-10", "65535-65536"):
        with pytest.raises(ValueError):
            PortRange.parse(bad)
    with pytest.raises(ValueError):
        PortRange(1, 2).split(3)


def test_capacity_counts_peer_connections_per_call() -> None:
    assert ports_per_call() == 4 and ports_per_call(turn=True) == 8
    assert capacity_error(PortRange(40000, 40199), 2, 25) is None  # 2 x 25 x 4 = 200
    problem = capacity_error(PortRange(40000, 40198), 2, 25)
    assert problem is not None and "need 200" in problem and "199 ports" in problem
    assert capacity_error(PortRange(40000, 40199), 2, 25, turn=True) is not None


@pytest.fixture
def blocker() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


def test_pool_binds_round_robin_skips_ports_in_use_and_runs_out(
    blocker: list[socket.socket],
) -> None:
    ports = PortRange(41000, 41003)
    outsider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    outsider.bind(("127.0.0.1", 41001))  # someone else's socket
    blocker.append(outsider)
    pool = PortPool(ports)
    first, second, third = (pool.bind("127.0.0.1") for _ in range(3))
    blocker += [first, second, third]
    assert [s.getsockname()[1] for s in (first, second, third)] == [41000, 41002, 41003]
    with pytest.raises(PortsExhausted):
        pool.bind("127.0.0.1")
    second.close()  # closing frees the port: nothing else to release
    again = pool.bind("127.0.0.1")
    blocker.append(again)
    assert again.getsockname()[1] == 41002


def test_aioice_has_what_the_network_connection_builds_on() -> None:
    check_aioice()


async def test_answer_has_only_ports_in_range_and_the_announced_address() -> None:
    """An answer made with --rtc-ports 41000-41049 --announce-ip 198.51.100.7; the parties
    connect through those sockets and see each other."""
    network = IcePorts(PortRange.parse("41000-41049"), ANNOUNCED)
    room = Room("C-ice", lambda *_: None, network=network).start()
    tablet, family = PartyPeer(RED), PartyPeer(BLUE)
    try:
        answers = await asyncio.gather(
            room.offer("tablet", await tablet.offer()), room.offer("family", await family.offer())
        )
        for answer in answers:
            found = candidates(answer)
            hosts = [c for c in found if c[2] == "host" and c[0] != ANNOUNCED]
            assert hosts, found
            assert all(41000 <= port <= 41049 for _, port, _ in found), found
            announced = [c for c in found if c[0] == ANNOUNCED]
            assert sorted(p for _, p, _ in announced) == sorted(
                p for host, p, _ in hosts if ":" not in host
            ), found
        # No packet may leave the machine: the clients never see the (unreachable) address.
        local = [without(answer, ANNOUNCED) for answer in answers]
        await asyncio.gather(tablet.accept_answer(local[0]), family.accept_answer(local[1]))
        await see_each_other(tablet, family, decoded=3)
        transports = {
            t.receiver.transport.transport
            for leg in room._parties.values()
            for t in leg.pc.getTransceivers()
        }
        assert all(isinstance(t.iceGatherer._connection, NetworkConnection) for t in transports)
    finally:
        await asyncio.gather(tablet.close(), family.close())
        await room.close()


async def test_an_exhausted_range_refuses_the_offer_with_capacity() -> None:
    room = Room("C-full", lambda *_: None, network=IcePorts(PortRange(41050, 41050))).start()
    first, second = PartyPeer(RED), PartyPeer(BLUE)
    try:
        await room.offer("tablet", await first.offer())
        with pytest.raises(ControlError) as refused:
            await room.offer("family", await second.offer())
        assert refused.value.code == CAPACITY
    finally:
        await asyncio.gather(first.close(), second.close())
        await room.close()
