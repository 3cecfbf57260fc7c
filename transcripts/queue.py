"""The transcription job queue: Dramatiq's Redis broker on the deployment's own Redis.

Why Dramatiq: a well-kept queue with what this needs built in — a message a worker took stays
in that worker's unacknowledged set until it is acknowledged, and one whose worker stops
heartbeating (it was SIGKILLed, its host died) is put back on the queue by the broker's
maintenance and taken by another worker; a job that raises is retried with back-off
(``Retries``) and, past its tries, moved to the dead-letter queue (``transcripts.XQ``). It
works with the redis-py the project uses (arq pins redis < 6).

The node only enqueues (:class:`TranscriptionQueue`, one Redis round trip in a thread, after
the seal and never before it); :mod:`transcripts.worker` consumes. A call's job is enqueued
once (the store's ``pending`` mark) and done once (the store's ``done`` mark, see
:mod:`transcripts.store`), whatever the queue redelivers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from redis.asyncio import Redis

from core.redis_pool import connect_sync

log = logging.getLogger(__name__)

QUEUE: Final = "transcripts"
ACTOR: Final = "transcribe"
NAMESPACE: Final = "visitation-dramatiq"
SOCKET_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class QueueSettings:
    """``max_tries``: a job is dead-lettered after this many failed tries. A worker not heard
    from for ``heartbeat_timeout_s`` is taken for dead and its job redelivered; each broker
    command runs the maintenance that does it with ``maintenance_chance`` (per million)."""

    max_tries: int = 3
    heartbeat_timeout_s: float = 30.0
    maintenance_chance: int = 20_000
    min_backoff_ms: int = 2_000
    max_backoff_ms: int = 60_000
    time_limit_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        if self.heartbeat_timeout_s <= 0:
            raise ValueError("heartbeat_timeout_s must be positive")


def make_broker(redis_url: str, settings: QueueSettings) -> RedisBroker:
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=round(settings.time_limit_s * 1000)),
        ShutdownNotifications(),
        Callbacks(),
        Retries(
            max_retries=settings.max_tries - 1,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        CurrentMessage(),
    ]
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=connect_sync(redis_url, socket_timeout=SOCKET_TIMEOUT_S),  # Sentinel too
        middleware=middleware,
        namespace=NAMESPACE,
        heartbeat_timeout=round(settings.heartbeat_timeout_s * 1000),
        maintenance_chance=settings.maintenance_chance,
    )
    broker.declare_queue(QUEUE)
    return broker


@dataclass(frozen=True)
class QueueDepth:
    """The queue's jobs by state: ``queued`` waiting for a worker, ``retrying`` waiting out a
    retry's back-off, ``working`` taken by a worker and not yet acknowledged, ``dead`` given up
    on (dead-lettered, kept by the broker for its dead-message TTL)."""

    queued: int
    retrying: int
    working: int
    dead: int

    @property
    def backlog(self) -> int:
        """Jobs not yet being done: queued, or due again after a failed try."""
        return self.queued + self.retrying


async def queue_depth(redis: Redis) -> QueueDepth:
    """Read from the broker's own keys (see Dramatiq's ``dispatch.lua``) in one round trip."""
    name = f"{NAMESPACE}:{QUEUE}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.llen(name)
        pipe.hlen(f"{name}.msgs")
        pipe.hlen(f"{name}.DQ.msgs")
        pipe.hlen(f"{name}.XQ.msgs")
        queued, held, delayed, dead = (int(n) for n in await pipe.execute())
    return QueueDepth(queued=queued, retrying=delayed, working=max(0, held - queued), dead=dead)


def job_message(call_id: str) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=QUEUE, actor_name=ACTOR, args=(call_id,), kwargs={}, options={}
    )


class TranscriptionQueue:
    """The node's side: enqueue a sealed recording's job (blocking I/O kept off the loop)."""

    def __init__(self, redis_url: str, settings: QueueSettings | None = None) -> None:
        self.settings = settings or QueueSettings()
        self._broker = make_broker(redis_url, self.settings)

    async def enqueue(self, call_id: str) -> None:
        await asyncio.to_thread(self._broker.enqueue, job_message(call_id))

    async def backlog(self) -> int:
        """Jobs waiting (not the ones being done)."""
        size = await asyncio.to_thread(self._broker.do_qsize, QUEUE)
        return int(size)

    async def dead_letters(self) -> int:
        client = self._broker.client
        return int(await asyncio.to_thread(client.hlen, f"{NAMESPACE}:{QUEUE}.XQ.msgs"))

    def close(self) -> None:
        self._broker.close()
