"""Redis clients with a bounded pool that waits instead of failing, and that follow a failover.

redis-py's default pool holds at most 100 connections and raises ``Too many connections`` the
moment a 101st is wanted: a burst of requests (300 parallel health checks, 200 sockets
connecting, a wave of hang-ups) then fails half-way with 5xx or skipped clean-up. Every
process of ours uses :func:`connect` instead: at most ``max_connections`` connections, and a
request beyond them waits up to ``timeout_s`` for one to come back, then fails with a timeout.

A connection that breaks (Redis restarted from its AOF, a failover, a network blip) is
reconnected and the command retried with backoff for a few seconds, instead of failing the
first request after every restart (a pool built by hand gets no retries from redis-py).

A ``redis+sentinel://`` URL (:mod:`core.redis_sentinel`) gives a client of the master
the Sentinels name, found again on every new connection; its commands ride out a failover.
Such a client also carries a :class:`Replication` policy: how many replicas must have a money
write before it is acknowledged (``WAIT``, see :mod:`billing_hooks.durability`): 1 behind
Sentinel, none for a single Redis (``VISITATION_REDIS_MIN_REPLICAS`` and
``VISITATION_REDIS_WAIT_TIMEOUT`` change them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

import redis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff

from core import redis_sentinel
from core.redis_sentinel import (
    FailoverRetry,
    FollowingConnection,
    SentinelUrl,
    is_sentinel_url,
)

MAX_CONNECTIONS: Final = 64
POOL_TIMEOUT_S: Final = 10.0
RETRIES: Final = 6  # ~5 s of backoff in all: rides out a Redis restart
WAIT_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True)
class Replication:
    """``replicas`` (0: none asked) must acknowledge a money write within ``timeout_ms``."""

    replicas: int = 0
    timeout_ms: int = int(WAIT_TIMEOUT_S * 1000)


class BoundedPool(BlockingConnectionPool):
    """A blocking pool that carries the client's :class:`Replication` policy."""

    replication = Replication()


class FollowingPool(SentinelConnectionPool, BoundedPool):
    """The master's connections, found through the Sentinels, at most ``max_connections`` of
    them (a request beyond waits ``timeout``). Closing it closes its Sentinel clients too."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.sentinel_manager.aclose()


def retry_policy() -> Retry:
    """Retry on connection errors and timeouts, backing off from 0.1 s up to 2 s."""
    return Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), RETRIES)


def pool_size_from_env() -> tuple[int, float]:
    """``VISITATION_REDIS_MAX_CONNECTIONS`` / ``VISITATION_REDIS_POOL_TIMEOUT`` or defaults."""
    size = os.environ.get("VISITATION_REDIS_MAX_CONNECTIONS")
    timeout = os.environ.get("VISITATION_REDIS_POOL_TIMEOUT")
    return (int(size) if size else MAX_CONNECTIONS, float(timeout) if timeout else POOL_TIMEOUT_S)


def replication_from_env(sentinel: bool) -> Replication:
    """``VISITATION_REDIS_MIN_REPLICAS`` (default 1 behind Sentinel, else 0) and
    ``VISITATION_REDIS_WAIT_TIMEOUT`` (seconds, default 2)."""
    replicas = os.environ.get("VISITATION_REDIS_MIN_REPLICAS")
    timeout = os.environ.get("VISITATION_REDIS_WAIT_TIMEOUT")
    return Replication(
        int(replicas) if replicas else int(sentinel),
        int(1000 * (float(timeout) if timeout else WAIT_TIMEOUT_S)),
    )


def replication(client: Redis) -> Replication:
    """The policy of a client made by :func:`connect` (none for any other client)."""
    pool = client.connection_pool
    return pool.replication if isinstance(pool, BoundedPool) else Replication()


def connect(
    url: str, *, max_connections: int | None = None, timeout_s: float | None = None
) -> Redis:
    """A client whose pool (owned: closed with the client) waits for a free connection."""
    default_size, default_timeout = pool_size_from_env()
    size = max_connections or default_size
    if size < 1:
        raise ValueError("the Redis pool needs at least one connection")
    timeout = default_timeout if timeout_s is None else timeout_s
    pool: BoundedPool
    if is_sentinel_url(url):
        parsed = SentinelUrl.parse(url)
        manager = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(parsed.sentinels), sentinel_kwargs=redis_sentinel.sentinel_kwargs(parsed)
        )
        pool = FollowingPool(  # type: ignore[no-untyped-call,unused-ignore]
            parsed.master,
            manager,
            max_connections=size,
            timeout=timeout,
            retry=FailoverRetry(),
            connection_class=FollowingConnection,
            socket_keepalive=True,
            socket_keepalive_options=redis_sentinel.keepalive_options(),
            **redis_sentinel.node_kwargs(parsed),
        )
    else:
        pool = BoundedPool.from_url(
            url, max_connections=size, timeout=timeout, retry=retry_policy()
        )
    pool.replication = replication_from_env(is_sentinel_url(url))
    return Redis.from_pool(pool)


def connect_sync(url: str, *, socket_timeout: float) -> redis.Redis:
    """A blocking client (a thread's, e.g. a worker's heartbeat) of ``url``, Sentinel or not."""
    if is_sentinel_url(url):
        return redis_sentinel.connect_sync(url, socket_timeout=socket_timeout)
    return redis.Redis.from_url(url, socket_timeout=socket_timeout)
