"""Durable timers in a Redis sorted set, fired by whichever signaling node claims them first.

A timer is a member ``kind|call_id`` scored by its due time (ms). Every node polls; a claim moves
due members a lease into the future in one script run, so exactly one node handles each, and a
node that dies mid-handling leaves the timer to fire again on another node after the lease.
Handlers must be idempotent (the call state machine and the call's once-flags make them so).

Due timers are handled concurrently, at most ``concurrency`` per node: the claim loop keeps
claiming while handlers run, but never more timers than it has free slots, so one slow handler
(a hung SFU worker, a slow settlement) never delays another call's warning or hang-up. A handler
that runs long keeps its lease: every ``lease / 3`` the node moves the lease of each timer it
still holds forward (compare-and-set on the score it holds), and removes a handled timer only if
it still holds that score (so a timer re-armed meanwhile fires again).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.lua import script
from core.tasks import Periodic, TaskPool
from signaling.metrics import TIMER_LATENESS
from signaling.redis_keys import TIMERS

log = logging.getLogger(__name__)

TIMERS_KEY: Final = TIMERS()
DEFAULT_CONCURRENCY = 32
MAX_CLAIM = 100

# Claim due timers under a lease, renew the leases of those in hand, remove a handled one.
_CLAIM: Final = script("signaling", "timer_claim.lua")
_RENEW: Final = script("signaling", "timer_renew.lua")
_DONE: Final = script("signaling", "timer_done.lua")

TimerHandler = Callable[[str], Awaitable[None]]


def timer_member(kind: str, call_id: str) -> str:
    return f"{kind}|{call_id}"


class DurableTimers:
    """Polls the timer set and dispatches due timers to handlers by kind, concurrently."""

    def __init__(
        self,
        redis: Redis,
        interval_s: float = 0.1,
        lease_s: float = 1.5,  # a dead node's claims fire elsewhere within 2 s (SPEC)
        concurrency: int = DEFAULT_CONCURRENCY,
        stop_grace_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._claim = redis.register_script(_CLAIM)
        self._renew_script = redis.register_script(_RENEW)
        self._done = redis.register_script(_DONE)
        self._lease = lease_s
        self._stop_grace = stop_grace_s
        self._handlers: dict[str, TimerHandler] = {}
        self._pool = TaskPool("durable-timers", concurrency)
        # member -> the lease score this node holds for it, while its handler runs
        self._held: dict[str, int] = {}
        self._running: set[str] = set()
        self._lease_lock = asyncio.Lock()  # a renewal and a removal never interleave
        self._loop = Periodic("durable-timers", self.fire_due, interval_s, delay_first=False)
        self._renewer = Periodic("durable-timers-lease", self.renew, lease_s / 3, True)

    def on(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler

    async def schedule(self, kind: str, call_id: str, due: float) -> None:
        await self._redis.zadd(TIMERS_KEY, {timer_member(kind, call_id): int(due * 1000)})

    async def cancel(self, kind: str, call_id: str) -> None:
        await self._redis.zrem(TIMERS_KEY, timer_member(kind, call_id))

    @property
    def running(self) -> int:
        """Handlers running on this node now."""
        return len(self._running)

    def start(self) -> None:
        self._loop.start()
        self._renewer.start()

    async def stop(self) -> None:
        """Claim no more; give running handlers ``stop_grace_s`` (their leases kept), then
        cancel them: their timers fire again, on any node, once their lease runs out."""
        await self._loop.stop()
        await self._pool.stop(self._stop_grace)
        await self._renewer.stop()
        self._pool = TaskPool("durable-timers", self._pool.limit)  # restartable

    async def join(self) -> None:
        """Wait for every handler started so far (tests)."""
        await self._pool.join()

    async def fire_due(self) -> int:
        """Claim due timers (no more than free handler slots) and start their handlers;
        returns how many were claimed."""
        free = min(self._pool.free, MAX_CLAIM)
        if free <= 0:
            return 0
        now_ms = int(self._clock() * 1000)
        lease_ms = now_ms + int(self._lease * 1000)
        claimed = await self._claim(keys=[TIMERS_KEY], args=[now_ms, lease_ms, free])
        members = claimed[::2]
        for raw, due_ms in zip(members, claimed[1::2], strict=True):
            member = raw.decode()
            kind, _, call_id = member.partition("|")
            handler = self._handlers.get(kind)
            if handler is None:
                # Another node's kind (e.g. a newer version): leave it to that node.
                continue
            TIMER_LATENESS.labels(kind).observe(max(0.0, now_ms - float(due_ms)) / 1000)
            if member in self._running:
                # Re-armed (or its lease lapsed) while its handler still runs here: the handler
                # no longer holds it, so it fires again after this lease, not twice at once.
                continue
            self._running.add(member)
            self._held[member] = lease_ms
            self._pool.spawn(member, functools.partial(self._handle, member, handler, call_id))
        return len(members)

    async def renew(self) -> None:
        """Move the lease of every timer whose handler still runs here a lease ahead."""
        async with self._lease_lock:
            if not self._held:
                return
            held = list(self._held.items())
            lease_ms = int(self._clock() * 1000) + int(self._lease * 1000)
            args: list[str | int] = [lease_ms]
            for member, score in held:
                args += [member, score]
            renewed = await self._renew_script(keys=[TIMERS_KEY], args=args)
            for (member, _), ok in zip(held, renewed, strict=True):
                if member not in self._held:
                    continue
                if ok:
                    self._held[member] = lease_ms
                else:
                    log.debug("timer %s was re-armed or cancelled while its handler runs", member)
                    del self._held[member]

    async def _handle(self, member: str, handler: TimerHandler, call_id: str) -> None:
        handled = False
        try:
            await handler(call_id)
            handled = True
        except Exception:
            log.exception("timer %s failed; it will be retried after its lease", member)
        finally:
            self._running.discard(member)
            if not handled:  # failed or cancelled: stop renewing, so it is retried after its lease
                self._held.pop(member, None)
        if not handled:
            return
        async with self._lease_lock:
            held = self._held.pop(member, None)
            if held is None:
                return  # re-armed meanwhile: it fires again at its new time
            try:
                await self._done(keys=[TIMERS_KEY], args=[member, held])
            except RedisError:
                log.warning("timer %s: could not remove it; it fires again after its lease", member)
