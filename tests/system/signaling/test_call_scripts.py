"""Every script of signaling/ (its .lua files) on its own, on the real Redis: the call's
create and claim-once, the finish lock's renew and release, the durable timers' claim, renew
and done, presence's reserve and the monitors' flags (call_transition.lua:
tests/system/signaling/test_call_machine.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from core.lua import script
from signaling.timers import TIMERS_KEY


async def test_call_create_refuses_a_busy_party_and_writes_nothing(redis: Redis) -> None:
    create = redis.register_script(script("signaling", "call_create.lua"))
    keys = ["busy:resident:RA", "busy:family:FA", "call:c1", "calls:live:FAC", TIMERS_KEY]
    assert await create(keys=keys, args=["c1", "ring_timeout|c1", 5000, "state", "ringing"]) == (
        b"ok"
    )
    assert await redis.get("busy:resident:RA") == b"c1" == await redis.get("busy:family:FA")
    assert await redis.hgetall("call:c1") == {b"state": b"ringing"}
    assert await redis.smembers("calls:live:FAC") == {b"c1"}
    assert await redis.zscore(TIMERS_KEY, "ring_timeout|c1") == 5000
    # The family is busy with c1: a second call from another resident writes nothing.
    second = ["busy:resident:RB", "busy:family:FA", "call:c2", "calls:live:FAC", TIMERS_KEY]
    assert await create(keys=second, args=["c2", "ring_timeout|c2", 6000, "state", "x"]) == b"busy"
    assert not await redis.exists("busy:resident:RB", "call:c2")
    assert await redis.zscore(TIMERS_KEY, "ring_timeout|c2") is None


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


async def test_timer_claim_takes_only_due_timers_up_to_the_limit_under_a_lease(
    redis: Redis,
) -> None:
    claim = redis.register_script(script("signaling", "timer_claim.lua"))
    await redis.zadd(TIMERS_KEY, {"a|1": 100, "b|1": 200, "c|1": 300, "later|1": 9000})
    assert await claim(keys=[TIMERS_KEY], args=[300, 5000, 2]) == [b"a|1", b"100", b"b|1", b"200"]
    assert await redis.zrange(TIMERS_KEY, 0, -1, withscores=True) == [
        (b"c|1", 300.0),
        (b"a|1", 5000.0),
        (b"b|1", 5000.0),
        (b"later|1", 9000.0),
    ]
    assert await claim(keys=[TIMERS_KEY], args=[300, 6000, 10]) == [b"c|1", b"300"]
    assert await claim(keys=[TIMERS_KEY], args=[300, 7000, 10]) == []  # the rest are leased


async def test_timer_renew_and_done_touch_only_timers_still_at_our_lease(redis: Redis) -> None:
    renew = redis.register_script(script("signaling", "timer_renew.lua"))
    done = redis.register_script(script("signaling", "timer_done.lua"))
    await redis.zadd(TIMERS_KEY, {"mine|1": 5000, "rearmed|1": 123})  # re-armed while handled
    assert await renew(
        keys=[TIMERS_KEY], args=[8000, "mine|1", 5000, "rearmed|1", 5000, "gone|1", 5000]
    ) == [1, 0, 0]
    assert await redis.zscore(TIMERS_KEY, "mine|1") == 8000
    assert await redis.zscore(TIMERS_KEY, "rearmed|1") == 123
    assert await redis.zscore(TIMERS_KEY, "gone|1") is None  # not revived
    assert await done(keys=[TIMERS_KEY], args=["rearmed|1", 5000]) == 0  # stays armed
    assert await done(keys=[TIMERS_KEY], args=["mine|1", 5000]) == 0  # not the lease we hold now
    assert await done(keys=[TIMERS_KEY], args=["mine|1", 8000]) == 1
    assert await redis.zrange(TIMERS_KEY, 0, -1) == [b"rearmed|1"]


async def test_presence_reserve_caps_a_subjects_live_connections(redis: Redis) -> None:
    reserve = redis.register_script(script("signaling", "presence_reserve.lua"))
    key = ["presence:family:F1"]
    assert await reserve(keys=key, args=[100, "s1", 2, 200]) == 1
    assert await reserve(keys=key, args=[100, "s2", 2, 200]) == 1
    assert await reserve(keys=key, args=[100, "s3", 2, 200]) == 0  # at the cap: nothing written
    assert await reserve(keys=key, args=[100, "s1", 2, 300]) == 1  # already holds a place
    assert await redis.zcard("presence:family:F1") == 2
    # Expired places are dropped first: s1 and s2 expired at 200, so s3 gets in.
    assert await reserve(keys=key, args=[250, "s3", 2, 400]) == 1
    assert await redis.zrange("presence:family:F1", 0, -1) == [b"s3"]


async def test_flag_add_keeps_at_most_the_cap_and_refreshes_the_expiry(redis: Redis) -> None:
    add = redis.register_script(script("signaling", "flag_add.lua"))
    key = ["call:c1:flags"]
    assert await add(keys=key, args=['{"n": 1}', 2, 60]) == 1
    assert await add(keys=key, args=['{"n": 2}', 2, 600]) == 1
    assert 60 < await redis.ttl("call:c1:flags") <= 600
    assert await add(keys=key, args=['{"n": 3}', 2, 900]) == 0
    assert await redis.lrange("call:c1:flags", 0, -1) == [b'{"n": 1}', b'{"n": 2}']
    assert await redis.ttl("call:c1:flags") <= 600  # a refused flag changes nothing
