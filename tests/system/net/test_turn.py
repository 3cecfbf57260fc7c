"""Against a real coturn on loopback (``use-auth-secret``): the credentials ``session.info``
hands out allocate relays, a wrong one does not, and a worker's TURN socket binds in its range."""

from __future__ import annotations

import asyncio

import aioice
import pytest
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from core.ice_servers import IceServers
from core.ports import PortRange
from media.ice import IcePorts, NetworkConnection
from tests.conftest import ClientsFactory
from tests.system.net.coturn import Coturn


async def allocate(coturn: Coturn, username: str, password: str, transport: str) -> tuple[str, int]:
    turn, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol,
        server_addr=(coturn.host, coturn.port),
        username=username,
        password=password,
        transport=transport,
    )
    try:
        relayed: tuple[str, int] = turn.get_extra_info("sockname")
        return relayed
    finally:
        turn.close()


async def test_session_info_credentials_allocate_relays_on_coturn(
    loopback_coturn: Coturn, clients_on: ClientsFactory
) -> None:
    coturn = loopback_coturn
    clients = await clients_on(
        turn_urls=[coturn.url("udp"), coturn.url("tcp")], turn_secret=coturn.secret
    )
    family = await clients.connect("family", "F1")
    [turn] = (await family.request("session.info"))["ice_servers"]
    for transport in ("udp", "tcp"):
        host, port = await allocate(coturn, turn["username"], turn["credential"], transport)
        assert host == "127.0.0.1" and port > 0
    with pytest.raises(TransactionFailed):
        await allocate(coturn, turn["username"], "not-the-credential", "udp")
    stale = IceServers(turn_urls=(coturn.url("udp"),), turn_secret=coturn.secret)
    [expired] = stale.for_subject("family", "F1", now=1_000_000_000)  # expired in 2001
    assert expired.username is not None and expired.credential is not None
    with pytest.raises(TransactionFailed):
        await allocate(coturn, expired.username, expired.credential, "udp")


async def test_a_worker_gathers_a_relay_through_a_socket_of_its_range(
    loopback_coturn: Coturn,
) -> None:
    coturn = loopback_coturn
    [server] = IceServers(turn_urls=(coturn.url("udp"),), turn_secret=coturn.secret).for_subject(
        "sfu", "w0"
    )
    connection = aioice.Connection(
        ice_controlling=False,
        turn_server=(coturn.host, coturn.port),
        turn_username=server.username,
        turn_password=server.credential,
        turn_transport="udp",
    )
    connection.__class__ = NetworkConnection
    assert isinstance(connection, NetworkConnection)
    ports = PortRange(42100, 42149)
    connection.network = IcePorts(ports)
    try:
        await connection.gather_candidates()
        candidates = connection.local_candidates
        [relay] = [c for c in candidates if c.type == "relay"]
        assert relay.host == "127.0.0.1"
        assert relay.related_port in ports  # the address coturn saw: our TURN socket
        assert all(c.port in ports for c in candidates if c.type == "host")
    finally:
        await connection.close()
