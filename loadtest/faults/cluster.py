"""A whole server made of separate OS processes, for one fault case.

:class:`Cluster` (an async context manager) starts, in a private run directory: the embedded
Redis (AOF; with ``sentinel``, a master, a replica and three Sentinels:
:class:`loadtest.faults.sentinel.SentinelSet`), ``workers`` SFU worker processes
(:class:`media.pool.WorkerPool`, recording into ``<data>/recordings``) and ``nodes``
``visitation serve --workers 0`` signaling nodes sharing that data directory and one signing
secret; it seeds the benchmark's facility
(:func:`loadtest.harness.bench_seed`: residents ``R{i}``, families ``F{i}``, monitors
``M{i}``) plus investigator ``I1``. Every process it started is killed on the way out, even when
the case failed, and the run directory is removed (unless ``keep_dir``).

It is a :class:`loadtest.harness.ClientSource`: :func:`loadtest.harness.setup_call` drives calls
through it, each role's clients on the node ``routes`` names (default: the first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import aiohttp
from redis.asyncio import Redis

from billing_hooks.money.ledger import Ledger
from client.session import ProtocolClient
from core.domain import SeedFile
from core.redis_pool import connect
from core.tokens import Tokens
from loadtest.faults.media_host import MediaHost
from loadtest.faults.sentinel import SentinelSet
from loadtest.harness import FACILITY, bench_seed
from loadtest.processes import NodeProcess, RedisServer, Tmpfs
from loadtest.s3_server import S3Server
from media.control import SfuControl
from media.pool import WorkerPool
from recorder.storage import LocalStorage
from signaling.call_state import CallStore
from visitation.seed import apply_seed

log = logging.getLogger(__name__)

INVESTIGATOR = "I1"
RATE_CENTS = 10  # bench_seed's rate: a 10-cent balance buys exactly one minute
# Variables of the caller's environment that would change how the nodes behave.
#: The suite is one client address placing many calls, and it makes deposits: no rate limit in
#: its way, and the fake payment processor (never a real one).
LOAD_GENERATOR_ENV = {
    "VISITATION_PAYMENT_PROCESSOR": "fake",
    **{
        f"VISITATION_RATE_LIMIT_{name}": "off"
        for name in ("HTTP_ADDRESS", "HTTP_SUBJECT", "CONNECT_ADDRESS", "CONNECT_SUBJECT")
    },
    **{f"VISITATION_RATE_LIMIT_{name}": "off" for name in ("EVENTS_SUBJECT", "CALL_PLACE")},
    "VISITATION_RATE_LIMIT_SOCKETS_PER_SUBJECT": "1000",
}
_NODE_VARS_DROPPED = (
    "REDIS_URL",
    "VISITATION_BILLING_WEBHOOK_URL",
    "VISITATION_DATA_DIR",
    *(f"VISITATION_REDIS_{n}" for n in ("SENTINELS", "MASTER", "PASSWORD", "SENTINEL_PASSWORD")),
)


@dataclass
class ClusterSpec:
    parties: int = 1  # seeded resident/family/monitor triples (R{i}, F{i}, M{i})
    nodes: int = 1
    workers: int = 1
    one_minute: set[int] = field(default_factory=set)  # families F{i} that can afford 60 s
    balances: dict[int, int] = field(default_factory=dict)  # F{i} -> opening balance (cents)
    sentinel: bool = False  # Redis as a master, a replica and three sentinels (SentinelSet)
    #: The workers on another host (a network namespace: :class:`MediaHost`), reaching Redis
    #: and an S3 server (recordings) over its link, as on another machine.
    media_host: bool = False
    node_env: dict[str, str] = field(default_factory=dict)
    recordings_tmpfs_bytes: int | None = None  # recordings on a tmpfs this small
    max_calls_per_worker: int = 25
    keep_dir: bool = False
    log_level: str = "WARNING"


def fault_seed(spec: ClusterSpec) -> SeedFile:
    data = bench_seed(spec.parties).model_dump(mode="json")
    for family in data["families"]:
        index = int(family["id"][1:])
        if index in spec.one_minute:
            family["balance_cents"] = RATE_CENTS
        family["balance_cents"] = spec.balances.get(index, family["balance_cents"])
    data["staff"].append({"id": INVESTIGATOR, "role": "investigator", "facility_ids": ["*"]})
    seed = SeedFile.model_validate(data)
    assert seed.facilities[0].rate_cents_per_minute == RATE_CENTS
    return seed


class Cluster:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.secret = secrets.token_hex(32)
        self.tokens = Tokens(self.secret.encode())
        self.seed = fault_seed(spec)
        self.run_dir = Path(tempfile.mkdtemp(prefix="visitation-faults-"))
        self.data_dir = self.run_dir / "data"
        self.recordings_dir = self.data_dir / "recordings"
        self.logs_dir = self.run_dir / "logs"
        self.media_host = MediaHost() if spec.media_host else None
        link = self.media_host.local if self.media_host is not None else None
        self.redis_server = RedisServer(self.run_dir, also_bind=(link,) if link else ())
        self.s3 = S3Server(link) if link else None
        self.sentinels = SentinelSet(self.run_dir / "redis") if spec.sentinel else None
        self.tmpfs = (
            Tmpfs(self.recordings_dir, spec.recordings_tmpfs_bytes)
            if spec.recordings_tmpfs_bytes
            else None
        )
        self.nodes: list[NodeProcess] = []
        self.routes: dict[str, int] = {}  # role -> index of the node its clients use
        self.pool: WorkerPool | None = None
        self._redis: Redis | None = None
        self._worker_log: IO[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        self.logs_dir.mkdir(parents=True)
        self.recordings_dir.mkdir(parents=True)
        if self.tmpfs is not None:
            await asyncio.to_thread(self.tmpfs.mount)
        if self.media_host is not None:  # first: Redis listens on its link too
            await asyncio.to_thread(self.media_host.create)
        if self.sentinels is not None:
            url = await self.sentinels.start()
        else:
            url = await self.redis_server.start()
        self._redis = connect(url)
        await apply_seed(self._redis, self.seed)
        self._worker_log = (self.logs_dir / "workers.log").open("ab")
        recordings, worker_url, prefix, s3_env = str(self.recordings_dir), url, [], {}
        if self.media_host is not None and self.s3 is not None:
            await asyncio.to_thread(self.s3.start)
            recordings, s3_env = self.s3.recordings_url, self.s3.env
            worker_url = url.replace("@127.0.0.1:", f"@{self.media_host.local}:")
            prefix = self.media_host.exec_prefix
        self.pool = WorkerPool(
            worker_url,
            log_level=self.spec.log_level,
            id_prefix=f"faults-{secrets.token_hex(2)}",
            extra_args=[
                *("--recordings", recordings),
                *("--max-calls", str(self.spec.max_calls_per_worker)),
            ],
            output=self._worker_log,
            env=s3_env,
            command_prefix=prefix,
        )
        if self.spec.workers:
            await self.pool.start(self.spec.workers)
            await self.pool.wait_ready(self._redis)
        env = {k: v for k, v in os.environ.items() if k not in _NODE_VARS_DROPPED}
        env |= self._redis_env(url) | {"VISITATION_SECRET": self.secret}
        env |= {"VISITATION_LOG_LEVEL": self.spec.log_level, **s3_env, **self.spec.node_env}
        env["VISITATION_MAX_CALLS_PER_WORKER"] = str(self.spec.max_calls_per_worker)
        env |= LOAD_GENERATOR_ENV
        for i in range(self.spec.nodes):
            self.nodes.append(
                NodeProcess(f"node{i}", self.data_dir, env, self.logs_dir / f"node{i}.log")
            )
        await asyncio.gather(*(node.start() for node in self.nodes))

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await node.stop()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await self.pool.stop()
        if self._worker_log is not None:
            self._worker_log.close()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        with contextlib.suppress(Exception):
            await self.redis_server.stop()
        if self.sentinels is not None:
            with contextlib.suppress(Exception):
                await self.sentinels.stop()
        if self.s3 is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.s3.stop)
        if self.media_host is not None:
            await asyncio.to_thread(self.media_host.destroy)
        if self.tmpfs is not None:
            await asyncio.to_thread(self.tmpfs.unmount)
        if not self.spec.keep_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _redis_env(self, url: str) -> dict[str, str]:
        """How nodes are told where Redis is: ``REDIS_URL``, or (Sentinel) the variables an
        operator sets; the workers get the URL the nodes build from them."""
        if self.sentinels is None:
            return {"REDIS_URL": url}
        sentinels = self.sentinels
        return {
            "VISITATION_REDIS_SENTINELS": ",".join(s.address for s in sentinels.sentinels),
            "VISITATION_REDIS_MASTER": sentinels.master_name,
            "VISITATION_REDIS_PASSWORD": sentinels.password,
            "VISITATION_REDIS_SENTINEL_PASSWORD": sentinels.password,
        }

    # -- what cases use -----------------------------------------------------------------------

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "the cluster is not running"
        return self._redis

    @property
    def store(self) -> CallStore:
        return CallStore(self.redis)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.redis)

    @property
    def control(self) -> SfuControl:
        return SfuControl(self.redis, timeout_s=15.0)

    @property
    def facility(self) -> str:
        return FACILITY

    @property
    def family_ids(self) -> list[str]:
        return [f.id for f in self.seed.families]

    @property
    def worker_ids(self) -> list[str]:
        assert self.pool is not None
        return self.pool.worker_ids

    def worker_pid(self, worker_id: str) -> int:
        assert self.pool is not None
        return self.pool.processes[worker_id].pid

    def node_for(self, role: str) -> NodeProcess:
        return self.nodes[self.routes.get(role, 0)]

    def client(self, role: str, subject: str) -> ProtocolClient:
        return ProtocolClient(self.node_for(role).url, self.tokens.issue(role, subject), subject)

    def http(
        self, role: str, subject: str, node: NodeProcess | None = None
    ) -> aiohttp.ClientSession:
        """An HTTP session to a node (default: the role's) with a bearer token."""
        token = self.tokens.issue(role, subject)
        return aiohttp.ClientSession(
            base_url=(node or self.node_for(role)).url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        )

    def recording_path(self, call_id: str) -> Path:
        """The call's recording while it is being written (sealed at finalize)."""
        return LocalStorage(self.recordings_dir).part_path(call_id)
