"""Shared fixtures: a real embedded Redis per test session, real signaling nodes, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from redis.asyncio import Redis

from client.media import ClipSpec
from client.peer import PartyPeer, close_all, join_call
from client.session import ProtocolClient
from core.config import Settings
from core.domain import SeedFile
from core.embedded_redis import EmbeddedRedis, _free_port
from core.keyspace import unknown
from core.logs import CHATTY_LOGGERS, set_context
from core.rate_limits import RateLimits
from core.redis_text import text
from core.tokens import Tokens
from loadtest import in_process
from loadtest.in_process import Node
from media.pool import WorkerPool
from tests.pyav_threads import keep_no_reformatters
from tests.seeds import standard_seed
from visitation.keyspace import every_key, foreign_globs
from visitation.seed import apply_seed

pytest_plugins = ["tests.plugins.redis_server"]  # the header names the Redis server once

keep_no_reformatters()  # or Playwright's driver start can hang the suite (tests/pyav_threads.py)

SECRET = secrets.token_hex(32).encode()
os.environ["VISITATION_SECRET"] = SECRET.decode()
# Tests reach nodes from one address and reuse subjects fast: limits far above the defaults
# (tests/system/security sets the defaults, or tighter ones, where it tests them).
TEST_RATE_LIMITS = RateLimits().scaled(1000)
# Every test that used the shared Redis leaves only keys the keyspace declares (VISITATION_CHECK_KEYS=0
# turns the check off while a new key is being written).
CHECK_KEYS = os.environ.get("VISITATION_CHECK_KEYS", "1") != "0"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "foreign_keys: the test writes Redis keys outside docs/keyspace.md on purpose"
    )


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Run every async test on uvloop, the loop the server runs on."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    url = embedded.start()
    yield url
    embedded.stop()


@pytest.fixture(scope="session")
def recordings_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where SFU workers and signaling nodes under test share recordings."""
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture
async def redis(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """A client of the session's Redis, emptied first. When the test is done, every key it left
    must be one of docs/keyspace.md's (a key built outside the scheme fails the test; a test
    that writes keys of its own on purpose is marked ``foreign_keys``)."""
    client = Redis.from_url(redis_url)
    await client.flushall()
    yield client
    try:
        await check_keyspace(client, request.node)
    finally:
        await client.aclose()


_running: list[pytest.Item] = []  # the test now running (for the key check's marker)


@pytest.fixture(autouse=True)
def _running_test(request: pytest.FixtureRequest) -> Iterator[None]:
    _running.append(request.node)
    yield
    _running.remove(request.node)


async def check_keyspace(client: Redis, test: pytest.Item | None = None) -> None:
    """Every key in Redis is one of docs/keyspace.md's, unless the test is ``foreign_keys``."""
    test = test or (_running[-1] if _running else None)
    if not CHECK_KEYS or (test is not None and test.get_closest_marker("foreign_keys")):
        return
    keys = [text(raw) async for raw in client.scan_iter(count=1000)]
    stray = unknown(keys, every_key(), foreign_globs())
    assert not stray, f"keys outside docs/keyspace.md (core.keyspace): {stray[:10]}"


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(SECRET)


@pytest.fixture
async def seeded(redis: Redis) -> SeedFile:
    seed = standard_seed()
    await apply_seed(redis, seed)
    return seed


@contextlib.asynccontextmanager
async def start_sfu_worker(
    redis_url: str, recordings_dir: Path, id_prefix: str
) -> AsyncIterator[str]:
    """One real SFU worker process, recording into ``recordings_dir``, registered and ready;
    yields its id."""
    pool = WorkerPool(
        redis_url,
        log_level="WARNING",
        id_prefix=id_prefix,
        extra_args=["--recordings-dir", str(recordings_dir)],
    )
    [worker_id] = await pool.start(1)
    client = Redis.from_url(redis_url)
    try:
        await pool.wait_ready(client)
        yield worker_id
    finally:
        await client.aclose()
        await pool.stop()


def package_sfu_worker(id_prefix: str) -> Any:
    """A package's own ``sfu_worker`` fixture, one worker shared by the package's tests: in its
    conftest.py, ``sfu_worker = package_sfu_worker("web-sfu")``. Package-scoped, because the
    other packages (e.g. tests/system/media) flush Redis and must not see it."""

    @pytest.fixture(scope="package")
    async def sfu_worker(redis_url: str, recordings_dir: Path) -> AsyncIterator[str]:
        async with start_sfu_worker(redis_url, recordings_dir, id_prefix) as worker_id:
            yield worker_id

    return sfu_worker


@contextlib.asynccontextmanager
async def redis_keeping_workers(redis_url: str) -> AsyncIterator[Redis]:
    """A client on a clean database but for the SFU workers' registration (``sfu:*``): each
    test of a package that shares one worker starts from this."""
    client = Redis.from_url(redis_url)
    try:
        stale = [key async for key in client.scan_iter() if not key.startswith(b"sfu:")]
        if stale:
            await client.delete(*stale)
        yield client
        await check_keyspace(client)
    finally:
        await client.aclose()


NodeFactory = Callable[..., Awaitable[Node]]


class MovableClock:
    """The wall clock, moved on by a test: a node given it reads it for its calls' times,
    their timers and so their charge, so a test skips time instead of waiting it out."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
async def start_node(
    redis_url: str, tmp_path: Path, recordings_dir: Path
) -> AsyncIterator[NodeFactory]:
    """Start in-process signaling nodes on free ports; all are stopped at teardown."""
    nodes: list[Node] = []

    async def start(clock: Callable[[], float] = time.time, **overrides: Any) -> Node:
        """``overrides``: settings; ``clock``: the node's (e.g. a :class:`MovableClock`)."""
        port = _free_port()
        settings = Settings.from_env(
            data_dir=tmp_path / "var",
            redis_url=redis_url,
            port=port,
            workers=0,
            recordings_dir=recordings_dir,
            **{"rate_limits": TEST_RATE_LIMITS, **overrides},
        )
        handle = await in_process.start_node(settings, redis_url, SECRET, clock=clock)
        nodes.append(handle)
        return handle

    yield start
    for handle in reversed(nodes):
        await handle.stop()


@pytest.fixture
async def node(start_node: NodeFactory, seeded: SeedFile) -> Node:
    return await start_node()


@dataclass
class Clients:
    """Builds connected clients by role and subject; closes them all at teardown."""

    tokens: Tokens
    default_url: str
    node: Node | None = None
    opened: list[ProtocolClient] = field(default_factory=list)

    async def connect(self, role: str, subject: str, url: str | None = None) -> ProtocolClient:
        client = ProtocolClient(url or self.default_url, self.tokens.issue(role, subject), subject)
        await client.connect()
        self.opened.append(client)
        return client

    async def close_all(self) -> None:
        """Close every client, even after one fails to close (else the others stay online and
        in their calls for the next tests); then raise the first failure."""
        failures: list[BaseException] = []
        for client in self.opened:
            try:
                await client.close()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


ClientsFactory = Callable[..., Awaitable[Clients]]


@pytest.fixture
async def clients_on(
    start_node: NodeFactory, seeded: SeedFile, tokens: Tokens
) -> AsyncIterator[ClientsFactory]:
    """Start a node with these settings (e.g. ``ring_timeout_s=1``); return its client pool."""
    pools: list[Clients] = []

    async def make(**overrides: Any) -> Clients:
        node = await start_node(**overrides)
        pool = Clients(tokens, node.url, node=node)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close_all()


@pytest.fixture
async def clients(node: Node, tokens: Tokens) -> AsyncIterator[Clients]:
    pool = Clients(tokens, node.url)
    yield pool
    await pool.close_all()


@dataclass
class Ringing:
    tablet: ProtocolClient
    family: ProtocolClient
    call_id: str
    incoming: dict[str, Any]


async def ring(clients: Clients, resident: str = "R1", family: str = "F1") -> Ringing:
    """A tablet and a family client with a call ringing between them."""
    family_client = await clients.connect("family", family)
    tablet = await clients.connect("tablet", resident)
    call_id = await tablet.place(family)
    incoming = await family_client.next("call.incoming")
    assert incoming["call_id"] == call_id
    await tablet.next("call.ringing")
    return Ringing(tablet, family_client, call_id, incoming)


async def accepted(clients: Clients, resident: str = "R1", family: str = "F1") -> Ringing:
    """A tablet and a family client already in an accepted call."""
    pair = await ring(clients, resident, family)
    await pair.family.accept(pair.call_id)
    assert (await pair.tablet.next("call.accepted"))["call_id"] == pair.call_id
    return pair


TABLET_CLIP = ClipSpec("red")
FAMILY_CLIP = ClipSpec("blue")


@dataclass
class Media:
    tablet: PartyPeer
    family: PartyPeer
    connected: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def media_between(
    pair: Ringing,
    *,
    decode: bool = False,
    tablet: ClipSpec = TABLET_CLIP,
    family: ClipSpec = FAMILY_CLIP,
) -> AsyncIterator[Media]:
    """Both parties of an accepted call send media; yields once both heard call.connected."""
    media = Media(PartyPeer(tablet, decode=decode), PartyPeer(family, decode=decode))
    try:
        await asyncio.gather(
            join_call(pair.tablet, pair.call_id, media.tablet),
            join_call(pair.family, pair.call_id, media.family),
        )
        media.connected = await pair.family.next("call.connected")
        assert await pair.tablet.next("call.connected") == media.connected
        yield media
    finally:
        await close_all(media.tablet, media.family)


def http_as(url: str, tokens: Tokens, role: str, subject: str) -> aiohttp.ClientSession:
    """An HTTP session to ``url`` that sends a bearer token for ``role``/``subject``."""
    token = tokens.issue(role, subject)
    return aiohttp.ClientSession(base_url=url, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For a test that runs the real logging setup: the root handlers, the levels of the
    chatty library loggers and the process's log context come back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    set_context(node=None, worker=None)
