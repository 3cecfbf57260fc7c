"""Every script of accounts/ (its .lua files) on its own, on the real Redis: the lockout's
count and check, the family sign-in lookup, the TOTP step and enrolment, the identity review's
submit and decide, and the identity audit's append. Each is called with its KEYS and ARGV as
its header names them; what it refuses leaves every key as it was (a dump before and after)."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from accounts.credentials import LOGIN_FAMILY_PREFIX
from accounts.redis_keys import (
    IDENTITY,
    IDENTITY_AUDIT,
    IDENTITY_AUDIT_FAMILY,
    IDENTITY_PENDING,
    LOCKOUT,
    LOGIN_EMAIL,
    LOGIN_FAMILY,
    LOGIN_STAFF,
)
from core.lua import script
from tests.redis_dump import dump


async def test_lockout_failed_counts_within_the_window_and_expires_with_it(
    redis: Redis,
) -> None:
    failed = redis.register_script(script("accounts", "lockout_failed.lua"))
    key = [LOCKOUT("signin", "family:a@example.org")]
    assert await failed(keys=key, args=[100, 60, "100:a"]) == 1
    assert await failed(keys=key, args=[130, 60, "130:b"]) == 2
    assert 0 < await redis.ttl(key[0]) <= 60
    # At 170 the failure of 100 has left the window: it is dropped as the new one is counted.
    assert await failed(keys=key, args=[170, 60.5, "170:c"]) == 2
    assert await redis.zrange(key[0], 0, -1, withscores=True) == [(b"130:b", 130), (b"170:c", 170)]
    assert await redis.ttl(key[0]) == 61  # the window, rounded up


async def test_lockout_locked_answers_until_the_limits_oldest_leaves_the_window(
    redis: Redis,
) -> None:
    locked = redis.register_script(script("accounts", "lockout_locked.lua"))
    key = [LOCKOUT("pin", "R1")]
    assert await locked(keys=key, args=[0, 900, 2]) == b"-1"  # no failures: open
    assert not await redis.exists(key[0])  # and nothing written
    await redis.zadd(key[0], {"a": 10, "b": 20, "c": 30})
    before = await dump(redis)
    # Three failures, a limit of two: locked until the second newest (20) leaves the window.
    assert float(await locked(keys=key, args=[100, 900, 2])) == 820
    assert await dump(redis) == before  # a check writes nothing while all are in the window
    assert await locked(keys=key, args=[925, 900, 2]) == b"-1"  # 10 and 20 left it
    assert await redis.zrange(key[0], 0, -1) == [b"c"]  # and were dropped


async def test_family_login_reads_the_hash_its_prefix_names(redis: Redis) -> None:
    login = redis.register_script(script("accounts", "family_login.lua"))
    assert LOGIN_FAMILY_PREFIX + "F1" == LOGIN_FAMILY("F1")  # the key the script builds
    assert await login(keys=[LOGIN_EMAIL("nobody@example.org")], args=[LOGIN_FAMILY_PREFIX]) is None
    await redis.set(LOGIN_EMAIL("a@example.org"), "F1")
    keys, args = [LOGIN_EMAIL("a@example.org")], [LOGIN_FAMILY_PREFIX]
    assert await login(keys=keys, args=args) == [b"F1", None]  # no password set yet
    await redis.hset(LOGIN_FAMILY("F1"), mapping={"password": "$argon2id$x", "email": "a"})
    before = await dump(redis)
    assert await login(keys=keys, args=args) == [b"F1", b"$argon2id$x"]
    assert await dump(redis) == before  # a lookup writes nothing


async def test_totp_use_step_accepts_each_step_once_and_never_an_older_one(redis: Redis) -> None:
    use = redis.register_script(script("accounts", "totp_use_step.lua"))
    key = [LOGIN_STAFF("S1")]
    assert await use(keys=key, args=[1000]) == 1
    assert await redis.hget(key[0], "totp_step") == b"1000"
    before = await dump(redis)
    assert await use(keys=key, args=[1000]) == 0  # the same code again
    assert await use(keys=key, args=[999]) == 0  # an older one
    assert await dump(redis) == before
    assert await use(keys=key, args=[1001]) == 1
    assert await redis.hget(key[0], "totp_step") == b"1001"


async def test_totp_enable_turns_on_only_the_pending_secret(redis: Redis) -> None:
    enable = redis.register_script(script("accounts", "totp_enable.lua"))
    key = [LOGIN_STAFF("S1")]
    assert await enable(keys=key, args=["SECRET"]) is None  # nothing pending: nothing written
    assert not await redis.exists(key[0])
    await redis.hset(
        key[0], mapping={"password": "h", "totp": "OLD", "totp_pending": "NEW", "totp_step": 7}
    )
    before = await dump(redis)
    assert await enable(keys=key, args=["OTHER"]) is None  # not the pending one
    assert await dump(redis) == before
    assert await enable(keys=key, args=["NEW"]) == b"NEW"
    assert await redis.hgetall(key[0]) == {b"password": b"h", b"totp": b"NEW"}  # step forgotten


def _record(status: str, submission: str) -> str:
    return json.dumps({"status": status, "submission": submission, "submitted_at": 1.0})


async def test_identity_submit_replaces_all_but_a_verified_record(redis: Redis) -> None:
    submit = redis.register_script(script("accounts", "identity_submit.lua"))
    keys = [IDENTITY("F1"), IDENTITY_PENDING()]
    assert await submit(keys=keys, args=[_record("pending", "s1"), 10, "F1"]) == b""
    assert await redis.zrange(IDENTITY_PENDING(), 0, -1, withscores=True) == [(b"F1", 10)]
    replaced = await submit(keys=keys, args=[_record("pending", "s2"), 20, "F1"])
    assert json.loads(replaced)["submission"] == "s1"  # the record it replaced
    assert json.loads(await redis.get(IDENTITY("F1")) or b"")["submission"] == "s2"
    assert await redis.zscore(IDENTITY_PENDING(), "F1") == 20
    await redis.set(IDENTITY("F1"), _record("verified", "s2"))
    await redis.zrem(IDENTITY_PENDING(), "F1")
    before = await dump(redis)
    assert await submit(keys=keys, args=[_record("pending", "s3"), 30, "F1"]) is None
    assert await dump(redis) == before  # a verified family submits nothing


async def test_identity_decide_takes_the_pending_submission_once(redis: Redis) -> None:
    decide = redis.register_script(script("accounts", "identity_decide.lua"))
    keys = [IDENTITY("F1"), IDENTITY_PENDING()]
    assert await decide(keys=keys, args=["s1", _record("verified", "s1"), "F1"]) == b"none"
    assert await dump(redis) == {}
    await redis.set(IDENTITY("F1"), _record("pending", "s2"))
    await redis.zadd(IDENTITY_PENDING(), {"F1": 5, "F2": 6})
    before = await dump(redis)
    # A decision on a submission the family has since replaced is refused.
    assert await decide(keys=keys, args=["s1", _record("verified", "s1"), "F1"]) == b"state"
    assert await dump(redis) == before
    assert await decide(keys=keys, args=["s2", _record("rejected", "s2"), "F1"]) == b"ok"
    assert json.loads(await redis.get(IDENTITY("F1")) or b"")["status"] == "rejected"
    assert await redis.zrange(IDENTITY_PENDING(), 0, -1) == [b"F2"]
    decided = await dump(redis)
    # The second admin's decision comes too late: nothing changes.
    assert await decide(keys=keys, args=["s2", _record("verified", "s2"), "F1"]) == b"state"
    assert await dump(redis) == decided


async def test_identity_audit_append_writes_the_entry_and_its_index_together(
    redis: Redis,
) -> None:
    append = redis.register_script(script("accounts", "identity_audit_append.lua"))
    keys = [IDENTITY_AUDIT(), IDENTITY_AUDIT_FAMILY("F1")]
    first = await append(keys=keys, args=["action", "view", "family_id", "F1"])
    second = await append(keys=keys, args=["action", "review", "family_id", "F1"])
    assert await redis.lrange(keys[1], 0, -1) == [first, second]
    entries = await redis.xrange(keys[0])
    assert [(i, f) for i, f in entries] == [
        (first, {b"action": b"view", b"family_id": b"F1"}),
        (second, {b"action": b"review", b"family_id": b"F1"}),
    ]
