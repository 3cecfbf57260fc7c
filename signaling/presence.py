"""Who is connected, across every signaling node sharing one Redis.

Each connection is a member ``node:sid`` of ``presence:{role}:{subject}``, scored by an expiry
that its node refreshes. A node that dies stops refreshing, so its members expire on their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis

from core.lua import script
from core.tasks import Periodic
from signaling.redis_keys import PRESENCE

log = logging.getLogger(__name__)


_RESERVE: Final = script("signaling", "presence_reserve.lua")


class Presence:
    def __init__(
        self,
        redis: Redis,
        node_id: str,
        ttl_s: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._node = node_id
        self._ttl = ttl_s
        self._local: dict[str, tuple[str, str]] = {}
        self._loop = Periodic("presence-refresh", self.refresh, ttl_s / 3, delay_first=True)
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(self, sid: str, role: str, subject: str, cap: int) -> bool:
        """Hold a place for ``sid`` among the subject's connections on all nodes, if fewer than
        ``cap`` are live (atomic: simultaneous connects cannot all pass). :meth:`add` follows
        once the connection is accepted; an unused place lapses with the presence TTL."""
        now = self._clock()
        member = f"{self._node}:{sid}"
        args: list[str | float] = [now, member, cap, now + self._ttl]
        return bool(await self._reserve(keys=[PRESENCE(role, subject)], args=args))

    async def add(self, sid: str, role: str, subject: str) -> None:
        self._local[sid] = (role, subject)
        await self._redis.zadd(
            PRESENCE(role, subject), {f"{self._node}:{sid}": self._clock() + self._ttl}
        )

    async def remove(self, sid: str) -> None:
        entry = self._local.pop(sid, None)
        if entry is not None:
            await self._redis.zrem(PRESENCE(*entry), f"{self._node}:{sid}")

    async def is_online(self, role: str, subject: str) -> bool:
        return bool(await self._redis.zcount(PRESENCE(role, subject), self._clock(), "+inf"))

    async def refresh(self) -> None:
        now = self._clock()
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid, (role, subject) in self._local.items():
                pipe.zadd(PRESENCE(role, subject), {f"{self._node}:{sid}": now + self._ttl})
                pipe.zremrangebyscore(PRESENCE(role, subject), "-inf", now)
            await pipe.execute()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        for sid in list(self._local):
            await self.remove(sid)
