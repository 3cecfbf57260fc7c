"""A real TURN server for the tests: Debian's coturn (``make coturn`` installs it), with
``use-auth-secret`` (TURN REST API credentials), its own temp dir, killed at the end."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.system.net.procs import Proc

PROBE = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"nothing listens on {sys.argv[1]}:{sys.argv[2]}")
        time.sleep(0.05)
"""


@dataclass
class Coturn:
    proc: Proc
    host: str
    port: int
    secret: str

    def url(self, transport: str) -> str:
        return f"turn:{self.host}:{self.port}?transport={transport}"

    @property
    def stun_url(self) -> str:
        return f"stun:{self.host}:{self.port}"


async def wait_listening(prefix: Sequence[str], host: str, port: int, timeout: float) -> None:
    """Until a TCP connect to ``host:port`` succeeds, run where ``prefix`` says."""
    probe = await Proc.start(
        "probe", [*prefix, sys.executable, "-c", PROBE, host, str(port), str(timeout)]
    )
    if await probe.exited(timeout + 5) != 0:
        raise AssertionError(probe.tail())


@contextlib.asynccontextmanager
async def running_coturn(
    workdir: Path,
    *,
    host: str,
    port: int,
    secret: str,
    relay_ports: tuple[int, int],
    prefix: Sequence[str] = (),
) -> AsyncIterator[Coturn]:
    """coturn listening on ``host:port`` (UDP and TCP), relaying from ``relay_ports``."""
    binary = shutil.which("turnserver")
    assert binary, "coturn is missing: `make coturn` installs it (make pytest depends on it)"
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    argv = [
        *prefix,
        binary,
        "-n",  # no configuration file: everything is here
        f"--listening-ip={host}",
        f"--listening-port={port}",
        f"--relay-ip={host}",
        f"--min-port={relay_ports[0]}",
        f"--max-port={relay_ports[1]}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        "--realm=visitation.test",
        "--fingerprint",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-multicast-peers",
        "--relay-threads=0",  # one thread: UDP packets of one client never meet two sessions
        f"--pidfile={workdir / 'turnserver.pid'}",
        f"--userdb={workdir / 'turndb'}",
        f"--log-file={workdir / 'turnserver.log'}",
        "--simple-log",
        "--verbose",  # sessions, allocations, permissions: what a failing test needs
        "--no-stdout-log",
    ]
    proc = await Proc.start("coturn", argv)
    try:
        await wait_listening(prefix, host, port, timeout=15)
        yield Coturn(proc, host, port, secret)
    finally:
        await proc.stop(timeout=5)
