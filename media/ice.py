"""The SFU's ICE on real networks: sockets in a port range and an announced public address.

aiortc gathers candidates through an :class:`aioice.Connection` per transport, which binds
``(address, 0)`` for every host address (an ephemeral port no firewall rule can name) and
knows no address but its own. :meth:`IcePorts.prepare` turns the connections of a peer
connection, before it gathers, into :class:`NetworkConnection` objects that

* bind every UDP socket inside the worker's share of ``--rtc-ports`` (:mod:`core.ports`): the
  host sockets clients send to, and the socket that talks to a TURN server over UDP;
* add, for each IPv4 (or IPv6) host candidate, a host candidate with ``--announce-ip`` and the
  same port. Nothing else changes: the NAT in front of the server forwards that address to the
  local one, so connectivity checks sent to it arrive on the very socket that is already
  listening, and are answered like any other (aioice keeps no list of addresses to accept).
  The local candidates stay in the answer for clients on the same network.

The converted connection reimplements aioice's ``get_component_candidates`` from aioice's own
building blocks (:func:`check_aioice` verifies they are there, so an upgrade fails loudly).
A worker without ``--rtc-ports`` or ``--announce-ip`` converts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.turn
from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, TransportPolicy, server_reflexive_candidate
from aiortc import RTCIceServer, RTCPeerConnection

from core.ice_servers import IceServers
from core.ports import PortPool, PortRange, PortsExhausted, capacity_error, fitted_calls
from media.admission import DEFAULT_MAX_CALLS
from media.control import CAPACITY, ControlError

log = logging.getLogger(__name__)

#: Below the local host candidates: a client on the server's own network keeps using those.
ANNOUNCED_LOCAL_PREF = 65534
_AIOICE_NEEDS = (
    (aioice.ice.Connection, "get_component_candidates"),
    (aioice.ice.Connection, "_protocols"),
    (aioice.ice, "relayed_candidate"),
    (aioice.turn, "TurnClientUdpProtocol"),
    (aioice.turn, "TurnTransport"),
    (aioice.turn.TurnTransport, "_connect"),
)


def check_aioice() -> None:
    """Raise if this aioice lacks what :class:`NetworkConnection` builds on."""
    probe = aioice.ice.Connection(ice_controlling=False)
    for owner, name in _AIOICE_NEEDS:
        target: Any = probe if owner is aioice.ice.Connection else owner
        if not hasattr(target, name):
            raise RuntimeError(f"aioice {aioice.__version__} has no {name}: media.ice needs it")


@dataclass
class IcePorts:
    """A worker's ICE settings: its share of the port range and the announced address."""

    ports: PortRange | None = None
    announce_ip: str | None = None

    def __post_init__(self) -> None:
        self.pool = PortPool(self.ports) if self.ports is not None else None
        if self.announce_ip is not None:
            self.announce_ip = str(ipaddress.ip_address(self.announce_ip))  # raises if bad

    @property
    def active(self) -> bool:
        return self.pool is not None or self.announce_ip is not None

    def prepare(self, pc: RTCPeerConnection) -> None:
        """Convert ``pc``'s ICE connections that have not gathered yet (idempotent)."""
        if not self.active:
            return
        for transceiver in pc.getTransceivers():
            gatherer = transceiver.receiver.transport.transport.iceGatherer
            connection = gatherer._connection
            if isinstance(connection, NetworkConnection) or gatherer.state != "new":
                continue
            connection.__class__ = NetworkConnection
            assert isinstance(connection, NetworkConnection)
            connection.network = self

    def announced(self, candidates: list[Candidate]) -> list[Candidate]:
        """A host candidate on the announced address for each host candidate of its family."""
        if self.announce_ip is None:
            return []
        version = ipaddress.ip_address(self.announce_ip).version
        return [
            Candidate(
                foundation=candidate_foundation("host", "udp", self.announce_ip),
                component=c.component,
                transport="udp",
                priority=candidate_priority(c.component, "host", ANNOUNCED_LOCAL_PREF),
                host=self.announce_ip,
                port=c.port,
                type="host",
            )
            for c in candidates
            if c.type == "host"
            and c.host != self.announce_ip
            and ipaddress.ip_address(c.host).version == version
        ]


class NetworkConnection(aioice.ice.Connection):
    """An :class:`aioice.Connection` gathering through an :class:`IcePorts`."""

    network: IcePorts

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        pool = self.network.pool
        if pool is None:
            candidates = await super().get_component_candidates(component, addresses, timeout)
        else:
            candidates = await self._gather_in_range(pool, component, addresses, timeout)
        return candidates + self.network.announced(candidates)

    async def _gather_in_range(
        self, pool: PortPool, component: int, addresses: list[str], timeout: int
    ) -> list[Candidate]:
        """aioice's gathering (host, server-reflexive, relayed) with sockets from ``pool``."""
        loop = asyncio.get_running_loop()
        candidates: list[Candidate] = []
        hosts: list[StunProtocol] = []
        exhausted = False
        for address in addresses:
            try:
                sock = pool.bind(address)
            except PortsExhausted as exc:
                log.warning("ICE: %s", exc)
                exhausted = True
                continue
            except OSError as exc:
                log.info("ICE: could not bind to %s - %s", address, exc)
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
            _, protocol = await loop.create_datagram_endpoint(lambda: StunProtocol(self), sock=sock)
            host, port = sock.getsockname()[:2]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            hosts.append(protocol)
            candidates.append(protocol.local_candidate)
        self._protocols += hosts
        if exhausted and not candidates:
            raise ControlError(CAPACITY, f"no free media port in {pool.ports}")

        tasks: list[asyncio.Task[tuple[Candidate, StunProtocol | None]]] = []
        if self.stun_server:
            for protocol in hosts:
                if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                    reflexive = server_reflexive_candidate(protocol, self.stun_server)
                    tasks.append(asyncio.create_task(reflexive))
        if self.turn_server:
            tasks.append(asyncio.create_task(self._relayed(pool, component)))
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in done:
                if task.exception() is None:
                    candidate, relay = task.result()
                    candidates.append(candidate)
                    if relay is not None:
                        self._protocols.append(relay)
                else:
                    log.info("ICE: gathering a candidate failed: %r", task.exception())
            for task in pending:
                task.cancel()
        return candidates

    async def _relayed(
        self, pool: PortPool, component: int
    ) -> tuple[Candidate, StunProtocol | None]:
        """A relayed candidate; over UDP, from a socket of the range (TCP: aioice's own)."""
        assert self.turn_server is not None
        policy_relay = self._transport_policy == TransportPolicy.RELAY
        if self.turn_transport != "udp":
            return await aioice.ice.relayed_candidate(
                component=component,
                hide_related_address=policy_relay,
                protocol_factory=lambda: StunProtocol(self),
                turn_server=self.turn_server,
                turn_username=self.turn_username,
                turn_password=self.turn_password,
                turn_ssl=self.turn_ssl,
                turn_transport=self.turn_transport,
            )
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(*self.turn_server, type=socket.SOCK_DGRAM)
        family, _, _, _, server = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(server)  # no packet: only asks the kernel for the source address
            source = probe.getsockname()[0]
        sock = pool.bind(source)
        try:
            sock.connect(server)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
            server_addr = (str(server[0]), int(server[1]))
            inner_transport, inner = await loop.create_datagram_endpoint(
                lambda: aioice.turn.TurnClientUdpProtocol(
                    server_addr,
                    username=self.turn_username,
                    password=self.turn_password,
                    lifetime=aioice.turn.DEFAULT_ALLOCATION_LIFETIME,
                    channel_refresh_time=aioice.turn.DEFAULT_CHANNEL_REFRESH_TIME,
                ),
                sock=sock,
            )
        except BaseException:
            sock.close()
            raise
        try:
            protocol = StunProtocol(self)
            transport = aioice.turn.TurnTransport(inner)
            await transport._connect(protocol)
        except BaseException:
            inner_transport.close()
            raise
        relayed = transport.get_extra_info("sockname")
        related = transport.get_extra_info("related_address")
        if policy_relay:
            related = ("0.0.0.0", 9) if ipaddress.ip_address(relayed[0]).version == 4 else ("::", 9)
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("relay", "udp", relayed[0]),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "relay"),
            host=relayed[0],
            port=relayed[1],
            type="relay",
            related_address=related[0],
            related_port=related[1],
        )
        return protocol.local_candidate, protocol


def worker_ice_servers(
    urls: list[str], turn_secret: str | None, subject: str
) -> Callable[[], list[RTCIceServer]]:
    """The worker's STUN/TURN servers (``--ice-server``), TURN credentials minted afresh from
    ``turn_secret`` each time it is called (once per call: they last 24 h). Raises ValueError
    for a bad URL, or TURN without a secret."""
    servers = IceServers(
        stun_urls=tuple(u for u in urls if u.startswith("stun")),
        turn_urls=tuple(u for u in urls if u.startswith("turn")),
        turn_secret=turn_secret,
    )

    def current() -> list[RTCIceServer]:
        return [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in servers.for_subject("sfu", subject)
        ]

    return current


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's ``--ice-server``, ``--rtc-ports`` and ``--announce-ip``."""
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        help="STUN/TURN URL, repeatable (TURN credentials are minted from $VISITATION_TURN_SECRET)",
    )
    parser.add_argument(
        "--rtc-ports",
        type=PortRange.parse,
        default=os.environ.get("VISITATION_RTC_PORTS") or None,
        metavar="MIN-MAX",
        help="bind every ICE socket in this UDP port range (default: ephemeral ports)",
    )
    parser.add_argument(
        "--announce-ip",
        default=os.environ.get("VISITATION_ANNOUNCE_IP") or None,
        metavar="ADDR",
        help="also offer host candidates with this (public) address",
    )


def parse_network_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, worker_id: str
) -> None:
    """Set ``args.network`` and ``args.ice_servers`` (TURN user ``<expiry>:sfu:<worker id>``);
    a parser error if they cannot work (``--max-calls`` must fit in ``--rtc-ports``). An
    unset ``--max-calls`` becomes the default, lowered to what ``--rtc-ports`` holds."""
    try:
        args.network = IcePorts(args.rtc_ports, args.announce_ip)
        secret = os.environ.get("VISITATION_TURN_SECRET") or None
        args.ice_servers = worker_ice_servers(args.ice_server, secret, worker_id)
    except ValueError as exc:
        parser.error(str(exc))
    if args.rtc_ports is None:
        if args.max_calls is None:
            args.max_calls = DEFAULT_MAX_CALLS
    else:
        turn = any(url.startswith("turn") for url in args.ice_server)
        if args.max_calls is None:  # the default, lowered to what the range holds
            args.max_calls = fitted_calls(DEFAULT_MAX_CALLS, args.rtc_ports, 1, turn=turn)
        problem = capacity_error(args.rtc_ports, 1, args.max_calls, turn=turn)
        if problem is not None:
            parser.error(problem.replace("--max-calls-per-worker / --workers", "--max-calls"))
