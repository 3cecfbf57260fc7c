"""Every script of media/ (its .lua files) on its own, on the real Redis: claiming a dead
worker's calls (``worker_claim.lua``) and dropping the events' idle consumers
(``events_remove_dead.lua``); and media's keys follow the scheme."""

from __future__ import annotations

from redis.asyncio import Redis

from core.keyspace import collisions
from core.lua import script
from media import redis_keys
from media.redis_keys import ALIVE, CALL_WORKER, EVENTS, LAST_BEATS, WORKER_CALLS, WORKERS
from tests.redis_dump import dump


def claim_keys(worker_id: str) -> list[str]:
    return [WORKERS(), ALIVE(worker_id), WORKER_CALLS(worker_id), LAST_BEATS()]


async def register(redis: Redis, worker_id: str, *calls: str) -> None:
    await redis.sadd(WORKERS(), worker_id)
    await redis.hset(LAST_BEATS(), worker_id, "100.5")
    for call_id in calls:
        await redis.sadd(WORKER_CALLS(worker_id), call_id)
        await redis.set(CALL_WORKER(call_id), worker_id)


async def test_a_live_worker_is_not_claimed_and_nothing_changes(redis: Redis) -> None:
    claim = redis.register_script(script("media", "worker_claim.lua"))
    await register(redis, "w1", "c1")
    await redis.set(ALIVE("w1"), "{}", px=60_000)
    before = await dump(redis)
    assert await claim(keys=claim_keys("w1"), args=["w1"]) is None
    assert await dump(redis) == before


async def test_a_dead_worker_is_claimed_once_with_its_calls(redis: Redis) -> None:
    claim = redis.register_script(script("media", "worker_claim.lua"))
    await register(redis, "w1", "c1", "c2")
    await register(redis, "w2", "c3")
    await redis.set(ALIVE("w2"), "{}", px=60_000)
    await redis.set(CALL_WORKER("c2"), "w2")  # c2 was re-opened on w2 meanwhile
    result = await claim(keys=claim_keys("w1"), args=["w1"])
    assert sorted(result) == [b"c1", b"c2"]
    assert await redis.smembers(WORKERS()) == {b"w2"}
    assert not await redis.exists(WORKER_CALLS("w1"), CALL_WORKER("c1"))
    assert await redis.get(CALL_WORKER("c2")) == b"w2"  # names another worker: kept
    assert await redis.hgetall(LAST_BEATS()) == {b"w2": b"100.5"}
    # Another node comes second: nothing to claim, nothing changes.
    before = await dump(redis)
    assert await claim(keys=claim_keys("w1"), args=["w1"]) is None
    assert await dump(redis) == before


async def test_a_dead_worker_without_calls_is_claimed_with_none(redis: Redis) -> None:
    claim = redis.register_script(script("media", "worker_claim.lua"))
    await register(redis, "w1")
    assert await claim(keys=claim_keys("w1"), args=["w1"]) == []
    assert not await redis.exists(WORKERS(), LAST_BEATS())


async def consumers(redis: Redis) -> dict[str, int]:
    rows = await redis.xinfo_consumers(EVENTS(), "signaling")
    return {row["name"].decode(): int(row["pending"]) for row in rows}


async def test_remove_dead_drops_only_idle_consumers_with_nothing_pending(redis: Redis) -> None:
    remove = redis.register_script(script("media", "events_remove_dead.lua"))
    await redis.xgroup_create(EVENTS(), "signaling", id="0", mkstream=True)
    await redis.xadd(EVENTS(), {"type": "closed", "call_id": "c1"})
    for name in ("us", "gone", "busy"):
        await redis.xgroup_createconsumer(EVENTS(), "signaling", name)
    await redis.xreadgroup("signaling", "busy", {EVENTS(): ">"}, count=1)  # one pending
    assert await consumers(redis) == {"us": 0, "gone": 0, "busy": 1}
    # Nobody has been idle an hour: nothing removed, nothing changed.
    before = await dump(redis)
    assert await remove(keys=[EVENTS()], args=["signaling", "us", 3_600_000]) == []
    assert await dump(redis) == before
    # Idle long enough (0 ms): only the other consumer with nothing pending goes.
    assert await remove(keys=[EVENTS()], args=["signaling", "us", 0]) == [b"gone"]
    assert await consumers(redis) == {"us": 0, "busy": 1}
    assert await redis.xlen(EVENTS()) == 1  # the stream itself is untouched


def test_media_keys_follow_the_scheme() -> None:
    assert collisions(redis_keys.KEYS) == []
    assert {key.space for key in redis_keys.KEYS} == {"sfu"}
    assert len(set(redis_keys.KEYS)) == len(redis_keys.KEYS)
    from media import metrics

    assert metrics.metrics_key("w1") == "sfu:metrics:w1"
