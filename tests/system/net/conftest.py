"""Fixtures of the network tests: coturn on loopback, and a whole deployment in namespaces.

The deployment (:class:`Deployment`, one per module): a Redis on a unix socket (reachable from
every namespace through the file system, so the root namespace needs no veth), the lab of
:mod:`tests.system.net.lab`, coturn on the lab's internet, and ``visitation serve`` inside the server's
namespace with ``--redis-url``, ``--announce-ip``, ``--rtc-ports`` and STUN/TURN. Tablets and
families are :mod:`tests.system.net.party` processes inside their namespaces.
"""

from __future__ import annotations

import random
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.embedded_redis import _free_port, find_redis_server
from core.tokens import Tokens
from tests.conftest import SECRET
from tests.seeds import standard_seed
from tests.system.net.coturn import Coturn, running_coturn
from tests.system.net.lab import INTERNET, MEDIA_PORTS, PUBLIC_SERVER, SIGNALING_PORT, NetLab
from tests.system.net.procs import Proc
from visitation.seed import apply_seed


@pytest.fixture
async def loopback_coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    first = random.randrange(50000, 59000, 100)  # coturn skips relay ports in use
    async with running_coturn(
        tmp_path / "coturn",
        host="127.0.0.1",
        port=_free_port(),
        secret=secrets.token_hex(16),
        relay_ports=(first, first + 99),
    ) as coturn:
        yield coturn


@dataclass
class Deployment:
    lab: NetLab
    redis: Redis
    coturn: Coturn
    server: Proc
    data_dir: Path
    tokens: Tokens

    @property
    def recordings(self) -> Path:
        return self.data_dir / "recordings"

    async def party(
        self, role: str, subject: str, where: str, *args: str, contact: str = "F1"
    ) -> Proc:
        """A tablet (in the server's namespace, on its LAN) or family (at ``where``)."""
        url = (
            f"http://127.0.0.1:{SIGNALING_PORT}"
            if where == "srv"
            else f"http://{PUBLIC_SERVER}:{SIGNALING_PORT}"
        )
        argv = [*self.lab.exec_prefix(where), sys.executable, "-m", "tests.system.net.party"]
        argv += ["--url", url, "--token", self.tokens.issue(role, subject), "--role", role]
        argv += ["--contact", contact, *args]
        proc = await Proc.start(f"{role}@{where}", argv)
        await proc.event("ready", timeout=30)
        return proc


@pytest.fixture(scope="module")
async def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A Redis of the module's own, on a unix socket only: ``unix://...``."""
    workdir = tmp_path_factory.mktemp("net-redis")
    sock = workdir / "redis.sock"
    argv = [find_redis_server(), "--port", "0", "--unixsocket", str(sock)]
    argv += ["--unixsocketperm", "700", "--dir", str(workdir), "--save", "", "--appendonly", "no"]
    proc = await Proc.start("redis", argv)
    try:
        await proc.wait_line("accept connections", timeout=20)
        yield f"unix://{sock}"
    finally:
        await proc.stop(timeout=5)


@pytest.fixture(scope="module")
async def deployment(
    redis_socket: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    workdir = tmp_path_factory.mktemp("net")
    lab = NetLab().build()
    redis = Redis.from_url(redis_socket)
    server: Proc | None = None
    try:
        await redis.flushall()
        await apply_seed(redis, standard_seed())
        async with running_coturn(
            workdir / "coturn",
            host=INTERNET,
            port=3478,
            secret=secrets.token_hex(16),
            relay_ports=(49152, 49251),
            prefix=lab.exec_prefix("inet"),
        ) as coturn:
            data_dir = workdir / "var"
            argv = [*lab.exec_prefix("srv"), sys.executable, "-m", "visitation.cli", "serve"]
            argv += ["--host", "0.0.0.0", "--port", str(SIGNALING_PORT)]
            argv += ["--data-dir", str(data_dir), "--redis-url", redis_socket, "--workers", "1"]
            argv += ["--rtc-ports", MEDIA_PORTS, "--announce-ip", PUBLIC_SERVER]
            argv += ["--stun-url", coturn.stun_url]
            argv += ["--turn-url", coturn.url("udp"), "--turn-url", coturn.url("tcp")]
            argv += ["--turn-secret", coturn.secret]
            server = await Proc.start("serve", argv)
            await server.wait_line("visitation serving on", timeout=60)
            yield Deployment(lab, redis, coturn, server, data_dir, Tokens(SECRET))
    finally:
        if server is not None:
            await server.stop(timeout=20)
            # Kept for a failing test's post-mortem (the parties' output is in the assertion).
            (workdir / "serve.log").write_text("\n".join(server.lines))
        await redis.aclose()
        lab.destroy()
