"""Bursts of requests wait for a Redis connection instead of failing (a bounded, blocking
pool): 300 concurrent requests, none answered 5xx, none told Redis is down; 200 sockets
connected and disconnected at once."""

from __future__ import annotations

import asyncio

import aiohttp
from redis.asyncio import Redis

from client.session import ProtocolClient
from core.tokens import Tokens
from loadtest.harness import bench_seed
from tests.conftest import Node, http_as
from tests.waiting import eventually
from visitation.seed import apply_seed

BURST = 300


async def test_300_concurrent_requests_all_get_redis(node: Node, tokens: Tokens) -> None:
    connector = aiohttp.TCPConnector(limit=0)  # really 300 at once
    async with (
        aiohttp.ClientSession(base_url=node.url, connector=connector) as anonymous,
        http_as(node.url, tokens, "family", "F1") as family,
    ):

        async def health() -> tuple[int, bool]:
            async with anonymous.get("/healthz") as response:
                return response.status, (await response.json())["redis"]

        async def account() -> int:
            async with family.get("/api/v1/account") as response:
                await response.read()
                return response.status

        results = await asyncio.gather(
            *(health() for _ in range(BURST)), *(account() for _ in range(BURST))
        )
    healths, accounts = results[:BURST], results[BURST:]
    # No SFU worker runs beside this node, so health is "not ok" (503) — but every one of
    # them reached Redis, and every account request was served.
    assert all(redis_ok for _, redis_ok in healths)
    assert accounts == [200] * BURST
    pool = node.node.redis.connection_pool
    assert pool.max_connections <= 64  # bounded: waiting, not opening without limit


async def test_200_simultaneous_connects_and_disconnects(
    node: Node, tokens: Tokens, redis: Redis
) -> None:
    """Every one of 200 sockets opened at once is accepted and present; closed at once, every
    disconnect handler runs to the end (no presence left behind)."""
    people = bench_seed(100)
    await apply_seed(redis, people)
    subjects = [("tablet", r.id) for r in people.residents]
    subjects += [("family", f.id) for f in people.families]
    assert len(subjects) == 200
    clients = [ProtocolClient(node.url, tokens.issue(role, s), s) for role, s in subjects]
    try:
        results = await asyncio.gather(
            *(c.connect(timeout=30) for c in clients), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        assert not failed, failed[:3]
        online = node.node.calls.presence
        assert all([await online.is_online(role, s) for role, s in subjects])
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    async def presence_gone() -> bool:
        return not [key async for key in redis.scan_iter("presence:*")]

    await eventually(presence_gone, "every presence key gone", within_s=30, interval_s=0.1)
