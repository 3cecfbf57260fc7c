"""Signaling tests run against one real SFU worker process, shared by the package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from media.pool import WorkerPool


@pytest.fixture(scope="package")
async def sfu_worker(redis_url: str, recordings_dir: Path) -> AsyncIterator[str]:
    pool = WorkerPool(
        redis_url,
        log_level="WARNING",
        id_prefix="test-sfu",
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


@pytest.fixture
async def redis(redis_url: str, sfu_worker: str) -> AsyncIterator[Redis]:
    """A clean database for each test, keeping the shared worker's registration (``sfu:*``)."""
    client = Redis.from_url(redis_url)
    stale = [key async for key in client.scan_iter() if not key.startswith(b"sfu:")]
    if stale:
        await client.delete(*stale)
    yield client
    await client.aclose()
