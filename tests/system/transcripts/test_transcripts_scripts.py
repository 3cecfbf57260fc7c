"""transcripts/'s scripts (transcript_claim.lua, transcript_finish.lua, transcript_forget.lua)
on their own, on the real Redis, and transcripts.redis_keys with its renames: each script is
called with its KEYS and ARGV as its header names them, and what it refuses leaves the
``transcripts`` space as it was (a dump before and after; this package's ``redis`` keeps the
shared SFU worker's keys)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from core.keyspace import collisions, migrate, unknown
from core.lua import script
from core.redis_text import text
from tests.redis_dump import dump
from transcripts import redis_keys
from transcripts.redis_keys import DONE, LOG, STATS, TRANSCRIPT
from transcripts.store import TranscriptStore

SPACE = "transcripts:*"


def _keys(call_id: str) -> list[str]:
    return [TRANSCRIPT(call_id), LOG(), DONE(), STATS()]


def _finish_args(call_id: str, body: str = '{"segments":[]}') -> list[str]:
    return [body, "sha", "vosk", "w1", "100.5", call_id, "3.25", "0.5", "10"]


async def test_claim_counts_tries_and_refuses_a_call_done(redis: Redis) -> None:
    claim = redis.register_script(script("transcripts", "transcript_claim.lua"))
    await redis.hset(TRANSCRIPT("c1"), mapping={"status": "pending", "tries": 0})
    assert await claim(keys=[TRANSCRIPT("c1")], args=["w1", "10.0"]) == 1
    assert await claim(keys=[TRANSCRIPT("c1")], args=["w2", "11.0"]) == 2  # a redelivery
    assert await redis.hgetall(TRANSCRIPT("c1")) == {
        b"status": b"working",
        b"tries": b"2",
        b"by": b"w2",
        b"updated_at": b"11.0",
    }
    await redis.hset(TRANSCRIPT("c1"), "status", "done")
    before = await dump(redis, SPACE)
    assert await claim(keys=[TRANSCRIPT("c1")], args=["w3", "12.0"]) == 0
    assert await dump(redis, SPACE) == before


async def test_finish_stores_logs_and_counts_once(redis: Redis) -> None:
    finish = redis.register_script(script("transcripts", "transcript_finish.lua"))
    assert await finish(keys=_keys("c1"), args=_finish_args("c1")) == 1
    stored = await redis.hgetall(TRANSCRIPT("c1"))
    assert (stored[b"status"], stored[b"body"], stored[b"by"]) == (
        b"done",
        b'{"segments":[]}',
        b"w1",
    )
    assert stored[b"completions"] == b"1" and stored[b"error"] == b""
    [(_, entry)] = await redis.xrange(LOG())
    assert entry == {b"call_id": b"c1", b"n": b"1"}
    assert await redis.smembers(DONE()) == {b"c1"}
    assert await redis.hgetall(STATS()) == {
        b"logged": b"1",
        b"done": b"1",
        b"audio_s": b"3.25",
        b"cpu_s": b"0.5",
    }
    before = await dump(redis, SPACE)
    assert await finish(keys=_keys("c1"), args=_finish_args("c1", "{}")) == 0  # done already
    assert await dump(redis, SPACE) == before


async def test_finish_numbers_the_log_without_a_gap_and_trims_it(redis: Redis) -> None:
    finish = redis.register_script(script("transcripts", "transcript_finish.lua"))
    for n in range(12):
        args = _finish_args(f"c{n}")
        args[-1] = "5"  # the log's length kept
        assert await finish(keys=_keys(f"c{n}"), args=args) == 1
    entries = await redis.xrange(LOG())
    assert [(f[b"call_id"], int(f[b"n"])) for _, f in entries] == [
        (f"c{n}".encode(), n + 1) for n in range(7, 12)
    ]
    assert await redis.scard(DONE()) == 12


async def test_forget_deletes_and_logs_only_a_transcript_there_is(redis: Redis) -> None:
    finish = redis.register_script(script("transcripts", "transcript_finish.lua"))
    forget = redis.register_script(script("transcripts", "transcript_forget.lua"))
    await finish(keys=_keys("c1"), args=_finish_args("c1"))
    before = await dump(redis, SPACE)
    assert await forget(keys=_keys("c2"), args=["c2", "10"]) == 0  # none: nothing logged
    assert await dump(redis, SPACE) == before
    assert await forget(keys=_keys("c1"), args=["c1", "10"]) == 1
    assert not await redis.exists(TRANSCRIPT("c1"))
    assert await redis.smembers(DONE()) == set()
    entries = await redis.xrange(LOG())
    assert [(f[b"call_id"], f[b"n"]) for _, f in entries] == [(b"c1", b"1"), (b"c1", b"2")]
    assert await redis.hget(STATS(), "logged") == b"2"


def test_the_families_do_not_collide() -> None:
    assert not collisions(redis_keys.KEYS)
    assert {key.space for key in redis_keys.KEYS} == {"transcripts", "alert", "alerts"}


async def test_what_the_store_writes_is_in_the_scheme(redis: Redis) -> None:
    store = TranscriptStore(redis)
    await store.mark_pending("c1", "F1")
    await store.claim("c1", "w1")
    await store.finish("c1", b"{}", "sha", "vosk", "w1")
    await store.mark_pending("c2", "F1")
    await store.fail("c2", "poison", final=True)
    keys = [text(k) async for k in redis.scan_iter(match=SPACE)]
    assert len(keys) == 6 and not unknown(keys, redis_keys.KEYS)
    assert all(sum(f.matches(k) for f in redis_keys.KEYS) == 1 for k in keys)


@pytest.mark.foreign_keys  # the old names
async def test_the_renames_move_every_tr_key_to_its_own_family(redis: Redis) -> None:
    await redis.hset("tr:c1", mapping={"status": "done", "body": "{}"})
    await redis.hset("tr:c2", "status", "pending")
    entry = await redis.xadd("tr:log", {"call_id": "c1", "n": 1})
    await redis.sadd("tr:done", "c1")
    await redis.rpush("tr:dead", '{"call_id": "c9"}')
    await redis.hset("tr:stats", "logged", 1)
    await redis.set("tr:worker:w1", 123, ex=10)
    moved = await migrate(redis, redis_keys.RENAMES)
    assert moved == {
        "transcripts-log-v1": 1,
        "transcripts-done-v1": 1,
        "transcripts-dead-v1": 1,
        "transcripts-stats-v1": 1,
        "transcripts-worker-v1": 1,
        "transcripts-call-v1": 2,
    }
    assert not [k async for k in redis.scan_iter(match="tr:*")]
    assert sorted(text(k) for k in await dump(redis, SPACE)) == sorted(
        [
            TRANSCRIPT("c1"),
            TRANSCRIPT("c2"),
            LOG(),
            DONE(),
            redis_keys.DEAD(),
            STATS(),
            redis_keys.WORKER("w1"),
        ]
    )
    assert 0 < await redis.ttl(redis_keys.WORKER("w1")) <= 10  # a beat keeps its expiry
    store = TranscriptStore(redis)
    assert [e.entry_id for e in await store.log_since("0")] == [text(entry)]  # ids kept
    found = await store.get("c1")
    assert found is not None and found.status == "done"
    assert await store.done_calls() == ["c1"]
    assert [d["call_id"] for d in await store.dead()] == ["c9"]
