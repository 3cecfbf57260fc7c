"""Redis clients with a bounded pool that waits instead of failing.

redis-py's default pool holds at most 100 connections and raises ``Too many connections`` the
moment a 101st is wanted: a burst of requests (300 parallel health checks, 200 sockets
connecting, a wave of hang-ups) then fails half-way with 5xx or skipped clean-up. Every
process of ours uses :func:`connect` instead: at most ``max_connections`` connections, and a
request beyond them waits up to ``timeout_s`` for one to come back, then fails with a timeout.

A connection that breaks (Redis restarted from its AOF, a failover, a network blip) is
reconnected and the command retried with backoff for a few seconds, instead of failing the
first request after every restart (a pool built by hand gets no retries from redis-py).
"""

from __future__ import annotations

import os
from typing import Final

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

MAX_CONNECTIONS: Final = 64
POOL_TIMEOUT_S: Final = 10.0
RETRIES: Final = 6  # ~5 s of backoff in all: rides out a Redis restart


def retry_policy() -> Retry:
    """Retry on connection errors and timeouts, backing off from 0.1 s up to 2 s."""
    return Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), RETRIES)


def pool_size_from_env() -> tuple[int, float]:
    """``VISITATION_REDIS_MAX_CONNECTIONS`` / ``VISITATION_REDIS_POOL_TIMEOUT`` or defaults."""
    size = os.environ.get("VISITATION_REDIS_MAX_CONNECTIONS")
    timeout = os.environ.get("VISITATION_REDIS_POOL_TIMEOUT")
    return (int(size) if size else MAX_CONNECTIONS, float(timeout) if timeout else POOL_TIMEOUT_S)


def connect(
    url: str, *, max_connections: int | None = None, timeout_s: float | None = None
) -> Redis:
    """A client whose pool (owned: closed with the client) waits for a free connection."""
    default_size, default_timeout = pool_size_from_env()
    if (max_connections or default_size) < 1:
        raise ValueError("the Redis pool needs at least one connection")
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections or default_size,
        timeout=default_timeout if timeout_s is None else timeout_s,
        retry=retry_policy(),
    )
    return Redis.from_pool(pool)
