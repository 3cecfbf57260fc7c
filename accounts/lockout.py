"""Per-account lockout: after ``limit`` failed sign-ins within ``window_s``, the account is locked
until the oldest of those failures leaves the window, whatever address the attempts come from.

Each account's failures are one Redis sorted set (member: a unique id, score: when), kept only as
long as the window; every operation is one Lua script, so nodes counting at once never lose a
failure nor admit a sixth attempt.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis

from accounts.redis_keys import LOCKOUT
from core.lua import script

_LOCKED: Final = script(__package__, "lockout_locked.lua")
_FAILED: Final = script(__package__, "lockout_failed.lua")


class Lockout:
    """Failures per account key under ``lockout:{name}:`` (:data:`accounts.redis_keys.LOCKOUT`)."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        limit: int = 5,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a lockout needs limit >= 1 and a positive window")
        if not name or ":" in name:
            raise ValueError("a lockout's name is a non-empty name without ':'")
        self._redis = redis
        self._name = name
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._locked = redis.register_script(_LOCKED)
        self._failed = redis.register_script(_FAILED)

    def _key(self, key: str) -> str:
        return LOCKOUT(self._name, key)

    async def locked(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None if it may now."""
        now = self._clock()
        raw = await self._locked(keys=[self._key(key)], args=[now, self.window_s, self.limit])
        retry = float(raw.decode() if isinstance(raw, bytes) else raw)
        return None if retry < 0 else max(retry, 1.0)

    async def failed(self, key: str) -> int:
        """Count one failure of ``key``; the failures now in the window."""
        now = self._clock()
        args: list[float | str] = [now, self.window_s, f"{now!r}:{secrets.token_hex(4)}"]
        return int(await self._failed(keys=[self._key(key)], args=args))

    async def clear(self, key: str) -> None:
        """A successful sign-in (or a new password) forgets the failures."""
        await self._redis.delete(self._key(key))
