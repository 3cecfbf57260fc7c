"""Signaling tests run against one real SFU worker process, shared by the package."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import package_sfu_worker, redis_keeping_workers

sfu_worker = package_sfu_worker("test-sfu")


@pytest.fixture
async def redis(redis_url: str, sfu_worker: str) -> AsyncIterator[Redis]:
    """A clean database for each test, keeping the shared worker's registration (``sfu:*``)."""
    async with redis_keeping_workers(redis_url) as client:
        yield client
