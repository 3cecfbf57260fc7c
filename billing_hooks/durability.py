"""Money writes that a failover cannot take back: ``WAIT`` for a replica before acknowledging.

Behind Sentinel, Redis replicates asynchronously: a write the master acknowledged, then lost
with the master (SIGKILL, host gone) before its replica had it, is gone after the failover. So a
money write (a deposit, a hold, a settlement, a billing event in the outbox) is acknowledged
only once the client's :class:`core.redis_pool.Replication` policy is met: the write, an
``INCR`` of :data:`BARRIER_KEY` and ``WAIT <replicas> <timeout>`` go in one pipeline on one
connection. ``WAIT`` counts what *that connection* wrote; the barrier makes a retried write
that found its first attempt's result (and so wrote nothing itself) wait for that result too,
since replication is one ordered stream. A pipeline that redis-py replays after a broken
connection replays all three on the new master.

Fewer acknowledgements in time (no replica in sync: just after a failover, before a replica
rejoins) raise :class:`NotDurable`. The write was applied on the master and may or may not
survive; it must not be acknowledged. Every money operation is idempotent by its key (the
deposit's Idempotency-Key, ``settle:{call}``, the event id), so the caller retries the same
operation: the family API answers 503 with ``Retry-After`` and keeps the payment intent pending
(what a payment API does instead of "200, probably"), a settlement is retried by its durable
timer. With no replica required (a single Redis, the embedded default) nothing is waited for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from billing_hooks.redis_keys import DURABILITY_BARRIER
from core.redis_pool import Replication, replication

BARRIER_KEY: Final = DURABILITY_BARRIER()
RETRY_AFTER_S: Final = 2


class NotDurable(Exception):
    """A write that may or may not have been kept (made on the master but confirmed by too
    few replicas, or cut off by a Redis failure). Never acknowledge it; retry the same
    idempotent operation."""


def required(redis: Redis) -> Replication:
    """How many replicas must confirm a money write through ``redis`` (0: none)."""
    return replication(redis)


@dataclass(frozen=True)
class Durable:
    """What a durable pipeline returned: the writes' results, and how many replicas confirmed
    them (of ``required``; both 0 without a policy)."""

    results: list[Any]
    acked: int = 0
    required: int = 0

    @property
    def confirmed(self) -> bool:
        return self.acked >= self.required

    def check(self, what: str = "a money write") -> list[Any]:
        """The results, or :class:`NotDurable` if they are not confirmed."""
        if not self.confirmed:
            raise NotDurable(
                f"{what} was not confirmed by {self.required} replica(s) in time "
                f"({self.acked} did): not acknowledged, retry it"
            )
        return self.results


async def run_durably(redis: Redis, queue: Callable[[Pipeline], Awaitable[None]]) -> Durable:
    """Queue writes on a pipeline (``queue`` adds them) and run them on one connection, followed
    by the barrier and ``WAIT`` when replicas are required. Without a policy it is a plain
    (non-transactional) pipeline and every result counts as confirmed."""
    policy = required(redis)
    for attempt in range(2):
        try:
            async with redis.pipeline(transaction=False) as pipe:
                await queue(pipe)
                if policy.replicas:
                    pipe.incr(BARRIER_KEY)
                    pipe.wait(policy.replicas, policy.timeout_ms)
                results: list[Any] = await pipe.execute()
            break
        except NoScriptError:
            # The pipeline's connection broke after its scripts were loaded and it was replayed
            # on a new master that lacks them: load them again (once).
            if attempt:
                raise
    if not policy.replicas:
        return Durable(results)
    return Durable(results[:-2], int(results[-1]), policy.replicas)
