"""One-time codes (e-mail confirmation, password reset): random, stored hashed, single-use.

A code is 32 random bytes (``secrets.token_urlsafe``, 43 characters); Redis keeps only its
SHA-256 (``code:{purpose}:{hex}``, :data:`accounts.redis_keys.CODE` -> the subject, expiring
after the code's TTL), so a copy of the database holds no usable code. Redeeming is one
``GETDEL``: of two requests with the same code, exactly one gets the subject. A subject's
digests are also listed (:data:`accounts.redis_keys.CODES_OF`), so :meth:`OneTimeCodes.end_all`
can end every code it still holds (a password reset ends the other reset links).
"""

from __future__ import annotations

import hashlib
import secrets

from redis.asyncio import Redis

from accounts.redis_keys import CODE, CODES_OF
from core.redis_text import text

CODE_BYTES = 32
MAX_CODE_CHARS = 128


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class OneTimeCodes:
    """The codes of one ``purpose`` (``"confirm"``, ``"reset"``, ...)."""

    def __init__(self, redis: Redis, purpose: str) -> None:
        if not purpose or ":" in purpose:
            raise ValueError("a purpose is a non-empty name without ':'")
        self._redis = redis
        self._purpose = purpose

    async def issue(self, subject: str, ttl_s: float) -> str:
        """A new code for ``subject``, valid for ``ttl_s`` seconds (once)."""
        if ttl_s <= 0:
            raise ValueError("a code needs a positive TTL")
        code = secrets.token_urlsafe(CODE_BYTES)
        digest, ttl_ms = _digest(code), int(ttl_s * 1000)
        index = CODES_OF(self._purpose, subject)
        lives_ms = int(await self._redis.pttl(index))  # -2: none yet (PEXPIRE GT is 7.0+)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(CODE(self._purpose, digest), subject, px=ttl_ms)
            pipe.sadd(index, digest)
            pipe.pexpire(index, max(ttl_ms, lives_ms))  # as long as its longest code
            await pipe.execute()
        return code

    async def end_all(self, subject: str) -> int:
        """End every live code of ``subject`` (of this purpose); how many were live."""
        index = CODES_OF(self._purpose, subject)
        digests = [text(d) for d in await self._redis.smembers(index)]
        if not digests:
            return 0
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(CODE(self._purpose, d) for d in digests))
            pipe.srem(index, *digests)
            ended, _ = await pipe.execute()
        return int(ended)

    def _key(self, code: object) -> str | None:
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_CHARS:
            return None
        try:
            return CODE(self._purpose, _digest(code))
        except UnicodeEncodeError:  # a lone surrogate: no code of ours
            return None

    async def peek(self, code: object) -> str | None:
        """The subject of ``code`` if it is live, leaving it live (to check a request before
        spending the code on it)."""
        key = self._key(code)
        raw = None if key is None else await self._redis.get(key)
        return None if raw is None else text(raw)

    async def redeem(self, code: object) -> str | None:
        """The subject of ``code`` if it is live (and it is used up now); else None."""
        key = self._key(code)
        raw = None if key is None else await self._redis.getdel(key)
        return None if raw is None else text(raw)
