"""Revoked tokens: ``visitation revoke ROLE SUBJECT`` ends every token issued before it, a logout
ends the one token it presents.

- A subject's revocation is one Redis key, ``revoked:{role}:{subject}`` = the Unix time it was
  made (kept for good: a token may have any lifetime). A token of that subject whose ``iat`` is
  not after that time is refused.
- One token's revocation is ``revoked_token:{token id}`` (see :func:`core.tokens.token_id`),
  kept until that token expires anyway.

Every node checks both on connect and on each request (read fresh, or from a cache at most
``cache_ttl_s`` old), and its session sweep ends the open sockets either covers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from redis.asyncio import Redis

from core.redis_keys import REVOKED, REVOKED_TOKEN
from core.redis_text import text
from core.tokens import ROLES, token_id

Subject = tuple[str, str]  # (role, subject)


class IssuedToken(Protocol):
    """What identifies a token: a token's claims, or a socket's session."""

    @property
    def role(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def issued_at(self) -> float: ...


def revoked_key(role: str, subject: str) -> str:
    return REVOKED(role, subject)


def revoked_token_key(token: IssuedToken) -> str:
    return REVOKED_TOKEN(token_id(token.role, token.subject, token.issued_at))


class Revocations:
    def __init__(self, redis: Redis, cache_ttl_s: float = 1.0) -> None:
        self._redis = redis
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, bytes | str | None]] = {}  # key -> (read at, value)

    async def revoke(self, role: str, subject: str, at: float | None = None) -> float:
        """Revoke every token of ``role``/``subject`` issued up to now; the moment used."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        if not subject or len(subject) > 64:
            raise ValueError("subject must be 1 to 64 characters")
        moment = time.time() if at is None else at
        key = revoked_key(role, subject)
        await self._redis.set(key, repr(moment))
        self._cache.pop(key, None)
        return moment

    async def revoke_token(self, token: IssuedToken, expires_at: float) -> None:
        """Revoke this one token (a logout), until it would have expired anyway."""
        key = revoked_token_key(token)
        ttl_ms = max(1000, int((expires_at - time.time() + 1) * 1000))
        await self._redis.set(key, "1", px=ttl_ms)
        self._cache.pop(key, None)

    async def _read(self, keys: Sequence[str], fresh: bool) -> dict[str, bytes | str | None]:
        now = time.monotonic()
        found: dict[str, bytes | str | None] = {}
        for key in keys:
            cached = self._cache.get(key)
            if not fresh and cached is not None and now - cached[0] < self._ttl:
                found[key] = cached[1]
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        if missing:
            for key, value in zip(missing, await self._redis.mget(missing), strict=True):
                found[key] = value
                self._cache[key] = (now, value)
        if len(self._cache) > 4 * len(found) + 10_000:  # forget tokens long gone
            self._cache = {k: v for k, v in self._cache.items() if k in found}
        return found

    async def revoked_tokens(
        self, tokens: Iterable[IssuedToken], *, fresh: bool = True
    ) -> list[bool]:
        """For each of ``tokens``, whether it is revoked (one round trip for all)."""
        wanted = list(tokens)
        if not wanted:
            return []
        subject_keys = [revoked_key(t.role, t.subject) for t in wanted]
        token_keys = [revoked_token_key(t) for t in wanted]
        found = await self._read(subject_keys + token_keys, fresh)
        return [
            covers(t.issued_at, _moment(found[sk])) or found[tk] is not None
            for t, sk, tk in zip(wanted, subject_keys, token_keys, strict=True)
        ]

    async def revoked_at(self, role: str, subject: str, *, fresh: bool = False) -> float | None:
        """When every token of ``role``/``subject`` was last revoked (None: never)."""
        key = revoked_key(role, subject)
        return _moment((await self._read([key], fresh))[key])

    async def is_revoked(
        self, role: str, subject: str, issued_at: float, *, fresh: bool = False
    ) -> bool:
        """Whether the token of ``role``/``subject`` issued at ``issued_at`` is revoked (with
        all of its subject's, or alone)."""
        return (await self.revoked_tokens([_Token(role, subject, issued_at)], fresh=fresh))[0]


class _Token:
    __slots__ = ("issued_at", "role", "subject")

    def __init__(self, role: str, subject: str, issued_at: float) -> None:
        self.role, self.subject, self.issued_at = role, subject, issued_at


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
