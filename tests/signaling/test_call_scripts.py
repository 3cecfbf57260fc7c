"""The call scripts (signaling/*.lua) one by one, on the real Redis: create, claim once, and the
finish lock's renew and release (call_transition.lua: tests/signaling/test_call_machine.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from core.lua import script


async def test_call_create_refuses_a_busy_party_and_writes_nothing(redis: Redis) -> None:
    create = redis.register_script(script("signaling", "call_create.lua"))
    keys = ["busy:resident:RA", "busy:family:FA", "call:c1", "calls:live:FAC", "timers"]
    assert await create(keys=keys, args=["c1", "ring_timeout|c1", 5000, "state", "ringing"]) == (
        b"ok"
    )
    assert await redis.get("busy:resident:RA") == b"c1" == await redis.get("busy:family:FA")
    assert await redis.hgetall("call:c1") == {b"state": b"ringing"}
    assert await redis.smembers("calls:live:FAC") == {b"c1"}
    assert await redis.zscore("timers", "ring_timeout|c1") == 5000
    # The family is busy with c1: a second call from another resident writes nothing.
    second = ["busy:resident:RB", "busy:family:FA", "call:c2", "calls:live:FAC", "timers"]
    assert await create(keys=second, args=["c2", "ring_timeout|c2", 6000, "state", "x"]) == b"busy"
    assert not await redis.exists("busy:resident:RB", "call:c2")
    assert await redis.zscore("timers", "ring_timeout|c2") is None


async def test_claim_once_is_won_once_and_stamps_with_the_win(redis: Redis) -> None:
    claim = redis.register_script(script("signaling", "call_claim_once.lua"))
    assert await claim(keys=["call:gone"], args=["once:warning"]) == 0  # no record: nobody wins
    await redis.hset("call:c1", "state", "connected")
    assert await claim(keys=["call:c1"], args=["once:warning", "warned_at", "12.5"]) == 1
    assert await claim(keys=["call:c1"], args=["once:warning", "warned_at", "99"]) == 0
    assert await redis.hget("call:c1", "warned_at") == b"12.5"  # the winner's stamp stays


async def test_the_finish_lock_is_renewed_and_released_only_by_its_holder(redis: Redis) -> None:
    renew = redis.register_script(script("signaling", "lock_renew.lua"))
    release = redis.register_script(script("signaling", "lock_release.lua"))
    await redis.set("finish:c1", "mine", px=1000)
    assert await renew(keys=["finish:c1"], args=["theirs", 60_000]) == 0
    assert await redis.pttl("finish:c1") <= 1000
    assert await renew(keys=["finish:c1"], args=["mine", 60_000]) == 1
    assert await redis.pttl("finish:c1") > 1000
    assert await release(keys=["finish:c1"], args=["theirs"]) == 0
    assert await redis.get("finish:c1") == b"mine"
    assert await release(keys=["finish:c1"], args=["mine"]) == 1
    assert not await redis.exists("finish:c1")
    assert await renew(keys=["finish:c1"], args=["mine", 60_000]) == 0  # gone: not revived
