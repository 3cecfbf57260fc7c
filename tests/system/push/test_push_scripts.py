"""push/'s scripts (subscription_add.lua, subscription_remove.lua) on their own, on the real
Redis, and push.redis_keys: each script called with its KEYS and ARGV as its header names them;
what it refuses leaves every key as it was (a dump of the ``push`` space before and after:
this package's ``redis`` fixture also holds a seed and the shared SFU worker's keys)."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from core.keyspace import collisions, unknown
from core.lua import script
from core.redis_text import text
from push import redis_keys
from push.redis_keys import ENDPOINT, SUBSCRIPTIONS
from push.subscriptions import SUBSCRIPTIONS_PREFIX
from tests.redis_dump import dump


def _record(sub_id: str, endpoint_key: str, created_at: float) -> str:
    body = {"id": sub_id, "endpoint": "https://push/x", "created_at": created_at}
    return json.dumps(body | {"endpoint_key": endpoint_key})


async def _add(redis: Redis, family: str, sub_id: str, digest: str, at: float) -> list[bytes]:
    add = redis.register_script(script("push", "subscription_add.lua"))
    keys = [SUBSCRIPTIONS(family), ENDPOINT(digest)]
    args = [family, sub_id, _record(sub_id, ENDPOINT(digest), at), 2, SUBSCRIPTIONS_PREFIX]
    found: list[bytes] = await add(keys=keys, args=args)
    return found


def test_the_families_do_not_collide_and_the_prefix_is_the_hashs() -> None:
    assert not collisions(redis_keys.KEYS)
    assert SUBSCRIPTIONS_PREFIX + "F1" == SUBSCRIPTIONS("F1")
    assert {key.space for key in redis_keys.KEYS} == {"push"}


async def test_add_keeps_an_endpoints_id_moves_it_between_families_and_caps(
    redis: Redis,
) -> None:
    assert await _add(redis, "F1", "a", "d1", 10) == [b"a", 1, b""]
    assert await redis.get(ENDPOINT("d1")) == b"F1\na"
    # The same endpoint again: the same id, its first created_at kept.
    assert await _add(redis, "F1", "b", "d1", 20) == [b"a", 0, b""]
    assert json.loads(await redis.hget(SUBSCRIPTIONS("F1"), "a") or b"")["created_at"] == 10
    assert await redis.hkeys(SUBSCRIPTIONS("F1")) == [b"a"]
    # Another family posts that endpoint: the device leaves F1.
    assert await _add(redis, "F2", "c", "d1", 30) == [b"c", 1, b""]
    assert not await redis.exists(SUBSCRIPTIONS("F1"))
    assert await redis.get(ENDPOINT("d1")) == b"F2\nc"
    # Past the cap (2) the oldest goes, and its endpoint index with it.
    assert await _add(redis, "F2", "d", "d2", 40) == [b"d", 1, b""]
    assert await _add(redis, "F2", "e", "d3", 50) == [b"e", 1, b"c"]
    assert sorted(await redis.hkeys(SUBSCRIPTIONS("F2"))) == [b"d", b"e"]
    assert not await redis.exists(ENDPOINT("d1"))
    keys = [text(k) async for k in redis.scan_iter(match="push:*")]
    assert sorted(keys) == sorted([SUBSCRIPTIONS("F2"), ENDPOINT("d2"), ENDPOINT("d3")])
    assert not unknown(keys, redis_keys.KEYS)


async def test_remove_drops_the_record_and_only_an_index_still_naming_it(redis: Redis) -> None:
    remove = redis.register_script(script("push", "subscription_remove.lua"))
    await _add(redis, "F1", "a", "d1", 10)
    before = await dump(redis, "push:*")
    assert await remove(keys=[SUBSCRIPTIONS("F1")], args=["F1", "nope"]) == 0
    assert await remove(keys=[SUBSCRIPTIONS("F2")], args=["F2", "a"]) == 0  # not F2's
    assert await dump(redis, "push:*") == before
    # The endpoint moved on to another subscription meanwhile: its index stays.
    await redis.set(ENDPOINT("d1"), "F9\nz")
    assert await remove(keys=[SUBSCRIPTIONS("F1")], args=["F1", "a"]) == 1
    assert not await redis.exists(SUBSCRIPTIONS("F1"))
    assert await redis.get(ENDPOINT("d1")) == b"F9\nz"
    await _add(redis, "F1", "b", "d2", 20)
    assert await remove(keys=[SUBSCRIPTIONS("F1")], args=["F1", "b"]) == 1
    assert not await redis.exists(SUBSCRIPTIONS("F1"), ENDPOINT("d2"))
