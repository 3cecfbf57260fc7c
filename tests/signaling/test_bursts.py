"""Bursts of requests wait for a Redis connection instead of failing (a bounded, blocking
pool): 300 concurrent requests, none answered 5xx, none told Redis is down."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import Node, http_as
from visitation.tokens import Tokens

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
