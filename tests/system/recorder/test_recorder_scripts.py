"""Every script of recorder/ (its .lua files) on its own, on the real Redis, called with KEYS
and ARGV as their headers say: the catalog's create, finalize, remove, watch flags and hold,
the audit log's append and the playback meter's add. Each: what it writes, what it returns,
and that a refused input writes nothing (every key dumped before and after)."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from core.lua import script
from recorder.redis_keys import (
    ALL,
    AUDIT_CALL,
    AUDIT_LOG,
    AUDIT_ONCE,
    BY_FACILITY,
    BY_FAMILY,
    BY_RESIDENT,
    FACILITIES,
    FLAGGED,
    OPEN,
    PLAYBACK,
    RECORDING,
)
from tests.redis_dump import dump

MANIFEST = json.dumps({"call_id": "c1", "started_at": 1000.5})
INDEXES = [ALL(), BY_FACILITY("FAC"), BY_RESIDENT("R"), BY_FAMILY("F")]


def run(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(script("recorder", name))


async def create(redis: Redis, call_id: str = "c1") -> int:
    keys = [RECORDING(call_id), OPEN(), *INDEXES, FACILITIES()]
    return int(
        await run(redis, "catalog_create.lua")(keys=keys, args=[MANIFEST, 1000.5, call_id, "FAC"])
    )


async def finalize(redis: Redis, flagged: str = "0", started: float = 1000.25) -> int:
    keys = [RECORDING("c1"), OPEN(), FLAGGED(), *INDEXES]
    args = ['{"signed": true}', flagged, started, "c1"]
    return int(await run(redis, "catalog_finalize.lua")(keys=keys, args=args))


async def test_create_adds_an_unfinished_entry_once(redis: Redis) -> None:
    assert await create(redis) == 1
    assert await redis.hgetall(RECORDING("c1")) == {
        b"manifest": MANIFEST.encode(),
        b"state": b"recording",
        b"hold": b"0",
    }
    assert await redis.smembers(OPEN()) == {b"c1"}
    assert await redis.smembers(FACILITIES()) == {b"FAC"}
    for index in INDEXES:
        assert await redis.zscore(index, "c1") == 1000.5
    assert not await redis.exists(FLAGGED())
    before = await dump(redis)
    assert await create(redis) == 0  # the call has an entry: nothing written
    assert await dump(redis) == before


async def test_create_and_finalize_refuse_the_wrong_number_of_keys(redis: Redis) -> None:
    with pytest.raises(ResponseError, match="catalog_create"):
        await run(redis, "catalog_create.lua")(
            keys=[RECORDING("c1"), OPEN(), ALL()], args=[MANIFEST, 1, "c1", "FAC"]
        )
    with pytest.raises(ResponseError, match="catalog_finalize"):
        await run(redis, "catalog_finalize.lua")(
            keys=[RECORDING("c1"), OPEN(), FLAGGED(), ALL()], args=["{}", "yes", 1, "c1"]
        )
    assert await dump(redis) == {}


async def test_finalize_moves_a_recording_entry_to_final_once(redis: Redis) -> None:
    await create(redis)
    await create(redis, "c2")
    await redis.zrem(BY_FAMILY("F"), "c1")  # an index it left is not added back (XX)
    assert await finalize(redis, flagged="1") == 1
    entry = await redis.hgetall(RECORDING("c1"))
    assert entry[b"state"] == b"final" and entry[b"manifest"] == b'{"signed": true}'
    assert await redis.smembers(OPEN()) == {b"c2"}
    assert await redis.zscore(FLAGGED(), "c1") == 1000.25
    for index in INDEXES[:3]:
        assert await redis.zscore(index, "c1") == 1000.25  # moved to the signed started_at
    assert await redis.zscore(BY_FAMILY("F"), "c1") is None
    before = await dump(redis)
    assert await finalize(redis, started=2000) == 0  # final already: nothing written
    assert await dump(redis) == before


async def test_remove_discards_or_tombstones_only_from_the_expected_state(redis: Redis) -> None:
    remove = run(redis, "catalog_remove.lua")
    keys = [RECORDING("c1"), OPEN(), *INDEXES, FLAGGED()]
    await create(redis)
    before = await dump(redis)
    assert await remove(keys=keys, args=["c1", "final", "purged", 5]) == 0  # still recording
    assert await dump(redis) == before
    # Discard: an unfinished recording is deleted, out of every set and index.
    assert await remove(keys=keys, args=["c1", "recording", "", 0]) == 1
    assert await dump(redis) == {FACILITIES().encode(): before[FACILITIES().encode()]}
    # Purge: a final one becomes a tombstone, unless it is on hold.
    await create(redis)
    await finalize(redis, flagged="1")
    await redis.hset(RECORDING("c1"), "hold", "1")
    before = await dump(redis)
    assert await remove(keys=keys, args=["c1", "final", "purged", 5]) == 0
    assert await dump(redis) == before
    await redis.hset(RECORDING("c1"), "hold", "0")
    assert await remove(keys=keys, args=["c1", "final", "purged", 5]) == 1
    entry = await redis.hgetall(RECORDING("c1"))
    assert entry[b"state"] == b"purged" and entry[b"purged_at"] == b"5"
    assert entry[b"manifest"] == b'{"signed": true}'  # kept
    assert not await redis.exists(OPEN(), FLAGGED(), *INDEXES)


async def test_watch_flags_are_set_on_final_entries_and_index_them(redis: Redis) -> None:
    watch = run(redis, "catalog_watch_flags.lua")
    flags = json.dumps([{"source": "watch_word", "word": "x"}])
    await create(redis)
    before = await dump(redis)
    assert await watch(keys=[RECORDING("c1"), FLAGGED()], args=[flags, "c1"]) == 0  # recording
    assert await watch(keys=[RECORDING("gone"), FLAGGED()], args=[flags, "gone"]) == 0
    assert await dump(redis) == before
    await run(redis, "catalog_finalize.lua")(
        keys=[RECORDING("c1"), OPEN(), FLAGGED(), *INDEXES], args=[MANIFEST, "0", 1000.5, "c1"]
    )
    assert await watch(keys=[RECORDING("c1"), FLAGGED()], args=[flags, "c1"]) == 1
    assert await redis.hget(RECORDING("c1"), "watch_flags") == flags.encode()
    assert await redis.zscore(FLAGGED(), "c1") == 1000.5  # the manifest's started_at
    assert await watch(keys=[RECORDING("c1"), FLAGGED()], args=["[]", "c1"]) == 1
    assert await redis.hget(RECORDING("c1"), "watch_flags") == b"[]"
    assert await redis.zscore(FLAGGED(), "c1") == 1000.5  # left: a search checks the flags


async def test_hold_is_set_on_entries_not_purged(redis: Redis) -> None:
    hold = run(redis, "catalog_hold.lua")
    assert await hold(keys=[RECORDING("gone")], args=["1"]) == 0
    assert await dump(redis) == {}
    await create(redis)
    assert await hold(keys=[RECORDING("c1")], args=["1"]) == 1
    assert await redis.hget(RECORDING("c1"), "hold") == b"1"
    assert await hold(keys=[RECORDING("c1")], args=["0"]) == 1
    assert await redis.hget(RECORDING("c1"), "hold") == b"0"
    before = await dump(redis)
    with pytest.raises(ResponseError, match="catalog_hold"):
        await hold(keys=[RECORDING("c1")], args=["yes"])
    assert await dump(redis) == before
    await redis.hset(RECORDING("c1"), "state", "purged")
    before = await dump(redis)
    assert await hold(keys=[RECORDING("c1")], args=["1"]) == 0
    assert await dump(redis) == before


async def test_audit_append_indexes_each_call_and_honours_once(redis: Redis) -> None:
    append = run(redis, "audit_append.lua")
    keys = [AUDIT_ONCE("-"), AUDIT_LOG(), AUDIT_CALL("c1"), AUDIT_CALL("c2")]
    first = await append(keys=keys, args=["", "action", "list", "at", "1.5"])
    assert await redis.lrange(AUDIT_CALL("c1"), 0, -1) == [first]
    assert await redis.lrange(AUDIT_CALL("c2"), 0, -1) == [first]
    assert await redis.xrange(AUDIT_LOG()) == [(first, {b"action": b"list", b"at": b"1.5"})]
    assert not await redis.exists(AUDIT_ONCE("-"))  # no once key without a TTL
    once = [AUDIT_ONCE("s|c1|call|p1"), AUDIT_LOG(), AUDIT_CALL("c1")]
    second = await append(keys=once, args=["60", "action", "view"])
    assert await redis.lrange(AUDIT_CALL("c1"), 0, -1) == [first, second]
    assert 0 < await redis.ttl(AUDIT_ONCE("s|c1|call|p1")) <= 60
    before = await dump(redis)
    assert await append(keys=once, args=["60", "action", "view"]) is None  # a repeat
    assert await dump(redis) == before


async def test_playback_add_counts_with_a_lifetime_from_the_first_request(redis: Redis) -> None:
    add = run(redis, "playback_add.lua")
    key = PLAYBACK("s|c1|call|p1")
    assert await add(keys=[key], args=[100, 1800]) == 100
    assert 1790 < await redis.ttl(key) <= 1800
    await redis.expire(key, 50)  # time passes
    assert await add(keys=[key], args=[25, 1800]) == 125
    assert 0 < await redis.ttl(key) <= 50  # not extended by a later request
    assert await redis.get(key) == b"125"
