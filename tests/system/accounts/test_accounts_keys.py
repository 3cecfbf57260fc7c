"""accounts.redis_keys: its families do not collide, every key the package writes is one of
them, and its renames move a deployment's data (on the real Redis) without touching the rest."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from accounts import redis_keys
from accounts.identity import IdentityReviews
from accounts.identity_audit import IdentityAudit
from core.audit_trail import Actor
from core.keyspace import collisions, migrate, unknown
from core.redis_text import text
from tests.redis_dump import dump


def test_the_families_do_not_collide_and_each_is_listed() -> None:
    assert not collisions(redis_keys.KEYS)
    named = {v for v in vars(redis_keys).values() if v.__class__.__name__ == "Key"}
    assert named == set(redis_keys.KEYS)
    assert {key.space for key in redis_keys.KEYS} == {
        "login", "code", "codes", "lockout", "pin", "identity", "identity_review", "mail"
    }  # fmt: skip


async def test_what_the_identity_review_writes_is_in_the_scheme(redis: Redis) -> None:
    reviews, audit = IdentityReviews(redis), IdentityAudit(redis)
    await reviews.submit("F1", "s1")
    await reviews.decide("F1", "verified", "A1", None)
    await reviews.submit("F2", "s2")
    await audit.append(Actor("A1", "admin"), "review", "F1")
    keys = [text(k) async for k in redis.scan_iter()]
    assert sorted(keys) == sorted(
        [
            redis_keys.IDENTITY("F1"),
            redis_keys.IDENTITY("F2"),
            redis_keys.IDENTITY_PENDING(),
            redis_keys.IDENTITY_AUDIT(),
            redis_keys.IDENTITY_AUDIT_FAMILY("F1"),
        ]
    )
    assert not unknown(keys, redis_keys.KEYS)
    assert all(sum(f.matches(k) for f in redis_keys.KEYS) == 1 for k in keys)


@pytest.mark.foreign_keys  # the old names, and the recordings' log beside them
async def test_the_renames_move_the_old_identity_keys_and_nothing_else(redis: Redis) -> None:
    await redis.set("identity:F1", '{"status": "pending"}')
    await redis.zadd("identity:pending", {"F1": 10})
    entry = await redis.xadd("audit:identity", {"action": "view", "family_id": "F1"})
    await redis.rpush("audit:identity:family:F1", entry)
    await redis.xadd("audit", {"action": "play"})  # the recordings' log: not ours
    await redis.rpush("audit:call:c1", "1-0")
    moved = await migrate(redis, redis_keys.RENAMES)
    assert moved == {
        "accounts-identity-pending-v1": 1,
        "accounts-identity-audit-v1": 1,
        "accounts-identity-audit-family-v1": 1,
    }
    after = {text(k) for k in await dump(redis)}
    assert after == {
        "identity:F1",  # the record keeps its name
        "identity_review:pending",
        "identity_review:audit",
        "identity_review:audit:family:F1",
        "audit",
        "audit:call:c1",
        "system:keyspace",
    }
    assert await redis.zscore(redis_keys.IDENTITY_PENDING(), "F1") == 10
    assert await redis.lrange(redis_keys.IDENTITY_AUDIT_FAMILY("F1"), 0, -1) == [entry]
    reviews = IdentityReviews(redis)
    assert await reviews.pending() == [("F1", 10.0)]
    again = await dump(redis)
    assert await migrate(redis, redis_keys.RENAMES) == {}  # once per deployment
    assert await dump(redis) == again
