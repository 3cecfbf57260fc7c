"""Durable timers in a Redis sorted set, fired by whichever signaling node claims them first.

A timer is a member ``kind|call_id`` scored by its due time (ms). Every node polls; a claim moves
due members a lease into the future in one script run, so exactly one node handles each, and a
node that dies mid-handling leaves the timer to fire again on another node after the lease.
Handlers must be idempotent (the call state machine makes them so).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from visitation.tasks import Periodic

log = logging.getLogger(__name__)

TIMERS_KEY = "timers"

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""

# Remove a handled timer only if it still holds the lease we claimed (not re-armed meanwhile).
_DONE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""

TimerHandler = Callable[[str], Awaitable[None]]


def timer_member(kind: str, call_id: str) -> str:
    return f"{kind}|{call_id}"


class DurableTimers:
    """Polls the timer set and dispatches due timers to handlers by kind."""

    def __init__(self, redis: Redis, interval_s: float = 0.1, lease_s: float = 10.0) -> None:
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._done = redis.register_script(_DONE)
        self._lease = lease_s
        self._handlers: dict[str, TimerHandler] = {}
        self._loop = Periodic("durable-timers", self.fire_due, interval_s, delay_first=False)

    def on(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler

    async def schedule(self, kind: str, call_id: str, due: float) -> None:
        await self._redis.zadd(TIMERS_KEY, {timer_member(kind, call_id): int(due * 1000)})

    async def cancel(self, kind: str, call_id: str) -> None:
        await self._redis.zrem(TIMERS_KEY, timer_member(kind, call_id))

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def fire_due(self) -> int:
        """Claim and handle every due timer once; returns how many fired."""
        now_ms = int(time.time() * 1000)
        lease_ms = now_ms + int(self._lease * 1000)
        members = await self._claim(keys=[TIMERS_KEY], args=[now_ms, lease_ms, 100])
        for raw in members:
            member = raw.decode()
            kind, _, call_id = member.partition("|")
            handler = self._handlers.get(kind)
            if handler is None:
                # Another node's kind (e.g. a newer version): leave it to that node.
                continue
            try:
                await handler(call_id)
            except Exception:
                log.exception("timer %s failed; it will be retried after its lease", member)
                continue
            await self._done(keys=[TIMERS_KEY], args=[member, lease_ms])
        return len(members)
