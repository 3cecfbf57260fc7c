"""The UDP port range of the SFU's media sockets (``--rtc-ports MIN-MAX``).

:class:`PortRange` parses and splits the range (``serve`` gives each worker a contiguous share);
:class:`PortPool` binds sockets inside a worker's share. The kernel is the source of truth for
what is free: a bind that fails with ``EADDRINUSE`` moves on to the next port, and a socket's
port is free again the moment it is closed, so nothing has to be released by hand. The pool
hands out ports round-robin, so a port just freed is the last to be reused (late packets of a
closed connection never reach a new one).

What one call needs (the figure behind :func:`capacity_error`): aioice binds one UDP socket per
host address for each peer connection (every client bundles audio and video on one transport,
RTCP multiplexed), and the same port can be bound once on every address, so the range counts
peer connections, not addresses. A call is budgeted :data:`PEER_CONNECTIONS_PER_CALL` peer
connections: the tablet's, the family's, one re-offer in flight (a party's new connection is
answered before its old one closes) and one monitor. A worker that gathers relay candidates
itself (a TURN URL) also binds the socket it talks to the TURN server through, one more per
peer connection. Calls with more monitors borrow from calls with none; when the range is
exhausted an offer is refused with ``capacity``.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Final

PEER_CONNECTIONS_PER_CALL: Final = 4  # tablet, family, a re-offer in flight, a monitor


def ports_per_call(*, turn: bool = False) -> int:
    """UDP ports of the range one call is budgeted on each host address."""
    return PEER_CONNECTIONS_PER_CALL * (2 if turn else 1)


def calls_that_fit(ports: PortRange, workers: int, *, turn: bool = False) -> int:
    """How many calls each of ``workers`` workers can be budgeted in ``ports``."""
    return ports.size // (max(1, workers) * ports_per_call(turn=turn))


def fitted_calls(default: int, ports: PortRange, workers: int, *, turn: bool = False) -> int:
    """``default`` calls per worker, lowered to what ``ports`` holds for ``workers`` workers;
    unchanged if not even one call fits (:func:`capacity_error` then says why)."""
    fits = calls_that_fit(ports, workers, turn=turn)
    return min(default, fits) if fits > 0 else default


class PortsExhausted(OSError):
    """Every port of the range is bound on this address."""


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of UDP ports, ``first``..``last``."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last <= 65535:
            raise ValueError(
                f"bad port range {self.first}-{self.last}: want 1 <= MIN <= MAX <= 65535"
            )

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """``"40000-40199"`` (a single port ``"40000"`` is a range of one)."""
        low, sep, high = text.strip().partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise ValueError(f"bad port range {text!r}: want MIN-MAX, e.g. 40000-40199") from None
        return cls(first, last)

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def split(self, parts: int) -> list[PortRange]:
        """``parts`` contiguous shares, as even as can be (the first ones one port larger)."""
        if parts < 1 or parts > self.size:
            raise ValueError(f"cannot split {self} ({self.size} ports) into {parts} shares")
        base, extra = divmod(self.size, parts)
        shares: list[PortRange] = []
        start = self.first
        for i in range(parts):
            size = base + (1 if i < extra else 0)
            shares.append(PortRange(start, start + size - 1))
            start += size
        return shares


def capacity_error(
    ports: PortRange, workers: int, max_calls: int, *, turn: bool = False
) -> str | None:
    """Why ``ports`` cannot carry ``workers`` x ``max_calls`` calls, or ``None`` if it can."""
    per_call = ports_per_call(turn=turn)
    need = max(1, workers) * max_calls * per_call
    if ports.size >= need:
        return None
    return (
        f"--rtc-ports {ports} has {ports.size} ports; {max(1, workers)} worker(s) x {max_calls} "
        f"calls x {per_call} ports a call need {need} (each call: 2 parties, a re-offer in "
        f"flight and a monitor{', each with a TURN socket' if turn else ''}): widen the range "
        "or lower --max-calls-per-worker / --workers"
    )


class PortPool:
    """Binds UDP sockets inside ``ports``, round-robin, skipping ports already bound."""

    def __init__(self, ports: PortRange) -> None:
        self.ports = ports
        self._next = 0

    def bind(self, address: str) -> socket.socket:
        """A non-blocking UDP socket bound to ``(address, port)`` for a free port of the range.

        Raises :class:`PortsExhausted` when every port is bound on ``address``, and
        ``OSError`` for an address that cannot be bound at all."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for _ in range(self.ports.size):
            port = self.ports.first + self._next
            self._next = (self._next + 1) % self.ports.size
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            sock.setblocking(False)
            return sock
        raise PortsExhausted(errno.EADDRINUSE, f"no free UDP port in {self.ports} on {address}")
