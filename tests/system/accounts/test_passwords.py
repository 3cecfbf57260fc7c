"""Argon2id hashing, the password policy, the per-account lockout and one-time codes, on a real
Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from accounts.codes import OneTimeCodes
from accounts.lockout import Lockout
from accounts.passwords import (
    MEMORY_COST_KIB,
    PARALLELISM,
    TIME_COST,
    PasswordRefused,
    SecretHasher,
    check_password,
)
from accounts.redis_keys import LOCKOUT
from tests.system.accounts.conftest import cheap_hasher
from tests.waiting import eventually


async def test_real_parameters_are_argon2id_at_owasp_minimum() -> None:
    hasher = SecretHasher()
    encoded = await hasher.hash("correct horse battery")
    assert encoded.startswith(f"$argon2id$v=19$m={MEMORY_COST_KIB},t={TIME_COST},p={PARALLELISM}$")
    assert "correct horse" not in encoded
    assert await hasher.verify(encoded, "correct horse battery")
    assert not await hasher.verify(encoded, "correct horse battery!")
    assert not hasher.needs_rehash(encoded)
    assert cheap_hasher().needs_rehash(encoded)


async def test_unknown_account_is_never_verified() -> None:
    hasher = cheap_hasher()
    assert not await hasher.verify(None, "anything at all")
    assert not await hasher.verify("not a hash", "anything at all")


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short1!", "at least 10 characters"),
        ("ana.doe@example.org", "e-mail"),
        ("ANA.DOE@example.org", "e-mail"),
        ("Ana.Doe.Example", None),
        ("ana.doe.example", None),
        ("qwertyuiop", "common password"),
        ("Password123", "common password"),
        ("1234567890", "common password"),
    ],
)
def test_password_rules(password: str, rule: str | None) -> None:
    email = "ana.doe@example.org"
    if rule is None:
        check_password(password, email)
        return
    with pytest.raises(PasswordRefused, match=rule):
        check_password(password, email)


def test_the_local_part_of_the_email_is_refused() -> None:
    with pytest.raises(PasswordRefused, match="e-mail"):
        check_password("verylongname", "VeryLongName@example.org")


async def test_lockout_counts_per_account_in_a_sliding_window(redis: Redis) -> None:
    now = [1000.0]
    lockout = Lockout(redis, "test", limit=5, window_s=900, clock=lambda: now[0])
    for _ in range(4):
        await lockout.failed("a")
    assert await lockout.locked("a") is None
    now[0] += 100
    assert await lockout.failed("a") == 5
    retry = await lockout.locked("a")
    assert retry == pytest.approx(800.0)
    assert await lockout.locked("b") is None  # another account is not locked
    now[0] += 801  # the four oldest left the window
    assert await lockout.locked("a") is None
    await lockout.failed("a")
    assert await lockout.locked("a") is None  # 2 in the window
    await lockout.clear("a")
    assert await redis.exists(LOCKOUT("test", "a")) == 0


async def test_lockout_is_atomic_under_concurrent_failures(redis: Redis) -> None:
    lockout = Lockout(redis, "race", limit=5, window_s=900)
    counts = await asyncio.gather(*(lockout.failed("x") for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    assert await lockout.locked("x") is not None


async def test_codes_are_random_hashed_single_use(redis: Redis) -> None:
    codes = OneTimeCodes(redis, "confirm")
    first, second = await codes.issue("F1", 60), await codes.issue("F1", 60)
    assert first != second and len(first) >= 40
    stored = [key async for key in redis.scan_iter("code:confirm:*")]
    assert len(stored) == 2
    assert all(first.encode() not in key for key in stored)
    results = await asyncio.gather(*(codes.redeem(first) for _ in range(10)))
    assert results.count("F1") == 1 and results.count(None) == 9
    assert await OneTimeCodes(redis, "reset").redeem(second) is None  # another purpose
    assert await codes.redeem(second) == "F1"
    for bad in ("", "x" * 10_000, "\ud800", None, 5):
        assert await codes.redeem(bad) is None


async def test_ending_a_subjects_codes_leaves_other_subjects_and_purposes(redis: Redis) -> None:
    resets, confirms = OneTimeCodes(redis, "reset"), OneTimeCodes(redis, "confirm")
    mine = [await resets.issue("F1", 60) for _ in range(3)]
    theirs = await resets.issue("F2", 60)
    confirm = await confirms.issue("F1", 60)
    assert await resets.redeem(mine[1]) == "F1"
    assert await resets.end_all("F1") == 2  # the two still live
    assert [await resets.peek(code) for code in mine] == [None, None, None]
    assert await resets.peek(theirs) == "F2" and await confirms.peek(confirm) == "F1"
    assert [key async for key in redis.scan_iter("codes:reset:F1")] == []  # nothing left over
    assert await resets.end_all("F1") == 0
    [index] = [key async for key in redis.scan_iter("codes:reset:*")]
    assert 0 < await redis.pttl(index) <= 60_000  # it lives as long as its longest code


async def test_codes_expire(redis: Redis) -> None:
    codes = OneTimeCodes(redis, "reset")
    code = await codes.issue("F1", 0.05)
    [key] = [key async for key in redis.scan_iter("code:reset:*")]
    await eventually(lambda: _gone(redis, key), "the code's key expires")
    assert await codes.redeem(code) is None


async def _gone(redis: Redis, key: bytes) -> bool:
    return not await redis.exists(key)
