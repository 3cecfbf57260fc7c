"""Finding 7: limits per subject and per address (429 with ``Retry-After``, ack ``rate_limited``),
a cap on flags per call, and expiry of a call's flags."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from redis.asyncio import Redis

from client.session import ProtocolClient, RefusedError
from core.domain import SeedFile
from core.rate_limits import RateLimits
from core.tokens import Tokens
from signaling.monitoring import flags_key
from tests.conftest import Clients, Node, NodeFactory, accepted, http_as

DEFAULTS = RateLimits()
StartWith = Callable[..., Awaitable[tuple[Node, Clients]]]


@pytest.fixture
async def start_with(
    start_node: NodeFactory, seeded: SeedFile, tokens: Tokens
) -> AsyncIterator[StartWith]:
    """A node with the default limits (or these changes to them), and its client pool."""
    pools: list[Clients] = []

    async def start(**changes: object) -> tuple[Node, Clients]:
        node = await start_node(rate_limits=replace(DEFAULTS, **changes))
        pools.append(Clients(tokens, node.url))
        return node, pools[-1]

    yield start
    for pool in pools:
        await pool.close_all()


async def test_a_tablet_cannot_ring_a_family_over_and_over(start_with: StartWith) -> None:
    """20 place/cancel rounds as fast as they go: the family rings at most call_place times."""
    _, clients = await start_with()
    family = await clients.connect("family", "F1")
    tablet = await clients.connect("tablet", "R1")
    refused = 0
    for _ in range(20):
        ack = await tablet.call("call.place", {"contact_id": "F1"})
        if not ack["ok"]:
            assert ack["error"]["code"] == "rate_limited", ack
            refused += 1
            continue
        await tablet.request("call.cancel", {"call_id": ack["call_id"]})
    allowed = int(DEFAULTS.call_place.split("/")[0])
    assert refused == 20 - allowed
    await family.request("session.info")  # every ring reached the family before this ack
    assert family.pending("call.incoming") == allowed


async def test_flags_are_limited_per_monitor_and_call(start_with: StartWith, redis: Redis) -> None:
    _, clients = await start_with()
    pair = await accepted(clients)
    monitor = await clients.connect("monitor", "S1")
    note = "x" * 2048
    acks = [
        await monitor.call("monitor.flag", {"call_id": pair.call_id, "note": note})
        for _ in range(40)
    ]
    allowed = int(DEFAULTS.monitor_flag.split("/")[0])
    assert sum(ack["ok"] for ack in acks) == allowed
    assert {ack["error"]["code"] for ack in acks if not ack["ok"]} == {"rate_limited"}
    assert await redis.llen(flags_key(pair.call_id)) == allowed


async def test_a_call_keeps_at_most_so_many_flags_and_not_forever(
    start_with: StartWith, redis: Redis
) -> None:
    _, clients = await start_with(monitor_flag="off", flags_per_call=5)
    pair = await accepted(clients)
    monitor = await clients.connect("monitor", "S1")
    acks = [
        await monitor.call("monitor.flag", {"call_id": pair.call_id, "note": "n"}) for _ in range(8)
    ]
    assert [ack["ok"] for ack in acks] == [True] * 5 + [False] * 3
    assert acks[-1]["error"]["code"] == "rate_limited"
    assert await redis.llen(flags_key(pair.call_id)) == 5
    assert 0 < await redis.ttl(flags_key(pair.call_id)) <= 7 * 24 * 3600


async def test_an_ended_call_record_expires(start_with: StartWith, redis: Redis) -> None:
    _, clients = await start_with()
    pair = await accepted(clients)
    assert await redis.ttl(f"call:{pair.call_id}") == -1  # a live call never expires
    await pair.tablet.hangup(pair.call_id)
    await pair.tablet.next("call.ended")
    assert 0 < await redis.ttl(f"call:{pair.call_id}") <= 7 * 24 * 3600


async def test_one_subject_holds_a_few_sockets_at_once(
    start_with: StartWith, tokens: Tokens
) -> None:
    node, _ = await start_with()
    token = tokens.issue("family", "F1")
    clients = [ProtocolClient(node.url, token, f"F1#{i}") for i in range(25)]
    results = await asyncio.gather(*(c.connect() for c in clients), return_exceptions=True)
    try:
        accepted_ = [r for r in results if isinstance(r, ProtocolClient)]
        refusals = [r for r in results if isinstance(r, RefusedError)]
        assert len(accepted_) == DEFAULTS.sockets_per_subject
        assert len(refusals) == 25 - DEFAULTS.sockets_per_subject
        assert all("rate_limited" in str(r) for r in refusals)
        await accepted_[0].close()  # a place frees up
        again = ProtocolClient(node.url, token)
        await again.connect()
        clients.append(again)
    finally:
        for client in clients:
            await client.close()


async def test_socket_events_per_subject(start_with: StartWith) -> None:
    _, clients = await start_with(events_subject="10/minute")
    family = await clients.connect("family", "F1")
    acks = [await family.call("session.info") for _ in range(12)]
    assert [ack["ok"] for ack in acks] == [True] * 10 + [False] * 2
    assert acks[-1]["error"]["code"] == "rate_limited"
    assert "try again in" in acks[-1]["error"]["message"]


async def assert_429(response: aiohttp.ClientResponse) -> None:
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["error"]["code"] == "rate_limited"


async def test_http_per_address(start_with: StartWith) -> None:
    node, _ = await start_with(http_address="5/minute")
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for _ in range(5):
            async with http.get("/") as response:
                assert response.status == 200
        async with http.get("/healthz") as response:
            await assert_429(response)


async def test_http_per_subject(start_with: StartWith, tokens: Tokens) -> None:
    node, _ = await start_with(http_subject="3/minute")
    async with http_as(node.url, tokens, "family", "F1") as http:
        for _ in range(3):
            async with http.get("/api/v1/account") as response:
                assert response.status == 200
        async with http.get("/api/v1/account/statement") as response:
            await assert_429(response)
    async with (
        http_as(node.url, tokens, "family", "F2") as other,
        other.get("/api/v1/account") as ok,
    ):
        assert ok.status == 200  # another subject is not held back


async def test_new_connections_per_address(start_with: StartWith, tokens: Tokens) -> None:
    node, _ = await start_with(connect_address="3/minute")
    clients = [ProtocolClient(node.url, tokens.issue("family", f"F{i}")) for i in (1, 2)]
    clients.append(ProtocolClient(node.url, tokens.issue("tablet", "R1")))
    try:
        for client in clients:
            await client.connect()
        with pytest.raises(RefusedError):
            await ProtocolClient(node.url, tokens.issue("tablet", "R2")).connect()
        assert (await clients[0].request("session.info"))["id"] == "F1"  # open ones go on
    finally:
        for client in clients:
            await client.close()


def test_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITATION_RATE_LIMIT_CALL_PLACE", "2 per 10 seconds")
    monkeypatch.setenv("VISITATION_RATE_LIMIT_HTTP_ADDRESS", "off")
    monkeypatch.setenv("VISITATION_RATE_LIMIT_SOCKETS_PER_SUBJECT", "3")
    limits = RateLimits.from_env()
    assert (limits.call_place, limits.http_address, limits.sockets_per_subject) == (
        "2 per 10 seconds",
        "off",
        3,
    )
    for name, bad in (("CALL_PLACE", "often"), ("SOCKETS_PER_SUBJECT", "0")):
        monkeypatch.setenv(f"VISITATION_RATE_LIMIT_{name}", bad)
        with pytest.raises(ValueError, match=f"VISITATION_RATE_LIMIT_{name}"):
            RateLimits.from_env()
        monkeypatch.delenv(f"VISITATION_RATE_LIMIT_{name}")


async def test_limits_count_on_a_redis_reached_by_its_unix_socket(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``--redis-url unix://...`` is a documented form: the limiter counts there too."""
    from core.embedded_redis import find_redis_server
    from core.rate_limits import RateLimiter
    from tests.system.net.procs import Proc

    workdir = tmp_path_factory.mktemp("socket-redis")
    sock = workdir / "redis.sock"
    argv = [find_redis_server(), "--port", "0", "--unixsocket", str(sock)]
    argv += ["--dir", str(workdir), "--save", "", "--appendonly", "no"]
    proc = await Proc.start("redis", argv)
    try:
        await proc.wait_line("accept connections", timeout=20)
        url = f"unix://{sock}"
        redis = Redis.from_url(url)
        try:
            limiter = RateLimiter(redis, url, replace(DEFAULTS, call_place="2/minute"))
            waits = [await limiter.hit("call_place", "R1") for _ in range(3)]
            assert waits[:2] == [None, None]
            assert waits[2] is not None and 1 <= waits[2] <= 60
            assert await redis.keys("ratelimit*")  # counted in this Redis
        finally:
            await redis.aclose()
    finally:
        await proc.stop(timeout=5)
