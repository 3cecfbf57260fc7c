"""Revoked subjects: ``visitation revoke ROLE SUBJECT`` ends every token issued before it.

A revocation is one Redis key, ``revoked:{role}:{subject}`` = the Unix time it was made (kept
for good: a token may have any lifetime). A token of that subject whose ``iat`` is not after
that time is refused by every node: at connect and on each request (read fresh, or from a cache
at most ``cache_ttl_s`` old), and its open sockets are ended by the node's session sweep.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis.asyncio import Redis

from core.redis_text import text
from core.tokens import ROLES

Subject = tuple[str, str]  # (role, subject)


def revoked_key(role: str, subject: str) -> str:
    return f"revoked:{role}:{subject}"


class Revocations:
    def __init__(self, redis: Redis, cache_ttl_s: float = 1.0) -> None:
        self._redis = redis
        self._ttl = cache_ttl_s
        self._cache: dict[Subject, tuple[float, float | None]] = {}  # -> (read at, revoked at)

    async def revoke(self, role: str, subject: str, at: float | None = None) -> float:
        """Revoke every token of ``role``/``subject`` issued up to now; the moment used."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        if not subject or len(subject) > 64:
            raise ValueError("subject must be 1 to 64 characters")
        moment = time.time() if at is None else at
        await self._redis.set(revoked_key(role, subject), repr(moment))
        self._cache.pop((role, subject), None)
        return moment

    async def refresh(self, who: Iterable[Subject]) -> dict[Subject, float | None]:
        """Read the revocations of ``who`` from Redis now (one round trip) and cache them."""
        wanted = list(dict.fromkeys(who))
        if not wanted:
            return {}
        raw = await self._redis.mget([revoked_key(role, subject) for role, subject in wanted])
        now = time.monotonic()
        found: dict[Subject, float | None] = {}
        for key, value in zip(wanted, raw, strict=True):
            found[key] = _moment(value)
            self._cache[key] = (now, found[key])
        if len(self._cache) > 4 * len(found) + 10_000:  # forget subjects long gone
            self._cache = {k: v for k, v in self._cache.items() if k in found}
        return found

    async def revoked_at(self, role: str, subject: str, *, fresh: bool = False) -> float | None:
        cached = self._cache.get((role, subject))
        if not fresh and cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return (await self.refresh([(role, subject)]))[(role, subject)]

    async def is_revoked(
        self, role: str, subject: str, issued_at: float, *, fresh: bool = False
    ) -> bool:
        """Whether a token of ``role``/``subject`` issued at ``issued_at`` is revoked."""
        return covers(issued_at, await self.revoked_at(role, subject, fresh=fresh))


def covers(issued_at: float, revoked_at: float | None) -> bool:
    """Whether a revocation made at ``revoked_at`` ends a token issued at ``issued_at``."""
    return revoked_at is not None and issued_at <= revoked_at


def _moment(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(text(raw))
    except ValueError:
        return float("inf")  # unreadable: revoked, never silently accepted
