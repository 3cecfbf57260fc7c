"""Token ids and single-token revocation (a logout), beside the subject-wide revocation."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from core.redis_keys import REVOKED_TOKEN
from core.revocation import Revocations
from core.tokens import ROLES, Tokens


def test_every_token_has_its_own_id(tokens: Tokens) -> None:
    first, a = tokens.mint("family", "F1")
    second, b = tokens.mint("family", "F1")
    assert a.token_id != b.token_id
    assert tokens.verify(first).token_id == a.token_id
    assert tokens.verify(second).token_id == b.token_id
    assert tokens.verify(first).expires_at == a.expires_at


def test_device_is_a_role(tokens: Tokens) -> None:
    assert "device" in ROLES
    claims = tokens.verify(tokens.issue("device", "SQ"))
    assert (claims.role, claims.subject) == ("device", "SQ")


async def test_revoking_one_token_leaves_the_others(redis: Redis, tokens: Tokens) -> None:
    revocations = Revocations(redis)
    _, a = tokens.mint("family", "F1", ttl_s=60)
    _, b = tokens.mint("family", "F1", ttl_s=60)
    assert await revocations.revoked_tokens([a, b]) == [False, False]
    await revocations.revoke_token(a, a.expires_at)
    assert await revocations.revoked_tokens([a, b]) == [True, False]
    assert await revocations.is_revoked("family", "F1", a.issued_at)
    assert not await revocations.is_revoked("family", "F1", b.issued_at)
    [key] = [k async for k in redis.scan_iter(REVOKED_TOKEN.glob())]
    assert 0 < await redis.ttl(key) <= 61  # kept only while the token could be used
    moment = await revocations.revoke("family", "F1")
    assert await revocations.revoked_tokens([a, b]) == [True, True]
    _, c = tokens.mint("family", "F1")
    assert c.issued_at > moment
    assert await revocations.revoked_tokens([c]) == [False]


async def test_a_cached_answer_is_dropped_by_a_revocation(redis: Redis, tokens: Tokens) -> None:
    revocations = Revocations(redis, cache_ttl_s=60)
    _, a = tokens.mint("admin", "A1")
    assert not await revocations.is_revoked(a.role, a.subject, a.issued_at)  # now cached
    await revocations.revoke_token(a, time.time() + 60)
    assert await revocations.is_revoked(a.role, a.subject, a.issued_at)
