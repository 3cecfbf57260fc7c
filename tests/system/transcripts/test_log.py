"""The transcripts log (``transcripts:log``) stays bounded, and every node's index stays whole
anyway: a new node, or one that fell further behind than the log keeps, rebuilds from the calls
done."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.system.transcripts.stored import store_done
from transcripts.index import TranscriptIndex
from transcripts.store import DEAD, DONE, LOG, TranscriptStore


async def test_the_log_keeps_only_its_newest_entries(redis: Redis) -> None:
    store = TranscriptStore(redis, log_max=5, dead_max=3)
    for n in range(12):
        await store_done(store, f"c{n}", f"north gate number {n}")
    assert await redis.xlen(LOG) == 5
    assert [e.call_id for e in await store.log_since("0")] == [f"c{n}" for n in range(7, 12)]
    assert [e.n for e in await store.log_since("0")] == list(range(8, 13))
    for n in range(5):
        await store.mark_pending(f"bad{n}", "SQ")
        await store.fail(f"bad{n}", "poison", final=True)
    assert await redis.llen(DEAD) == 3
    assert [d["call_id"] for d in await store.dead()] == ["bad2", "bad3", "bad4"]
    stats = await store.stats()
    assert (stats["done"], stats["dead_lettered"], stats["audio_s"]) == (12, 5, 30.0)


async def test_an_index_behind_the_trimmed_log_rebuilds_and_misses_nothing(
    redis: Redis,
) -> None:
    store = TranscriptStore(redis, log_max=5)
    early, fresh = TranscriptIndex(store), None
    try:
        for n in range(2):
            await store_done(store, f"c{n}", "north gate early")
        assert set(await early.search("north", None)) == {"c0", "c1"}
        for n in range(2, 12):  # 10 more: the entries after what `early` saw are trimmed
            await store_done(store, f"c{n}", "north gate later")
        assert await store.forget("c0")  # a deletion it would otherwise miss
        assert await redis.xlen(LOG) == 5
        want = {f"c{n}" for n in range(1, 12)}
        assert set(await early.search("north", None)) == want
        fresh = TranscriptIndex(store)  # a node that starts now
        assert set(await fresh.search("gate", None)) == want
        # Caught up: what follows is read from the log, nothing rebuilt.
        await store_done(store, "c12", "south gate")
        assert await early.catch_up() == 1
        assert await fresh.catch_up() == 1
        assert set(await fresh.search('"south gate"', ["SQ"])) == {"c12"}
    finally:
        early.close()
        if fresh is not None:
            fresh.close()


async def test_a_node_behind_by_less_than_the_log_keeps_just_follows_it(redis: Redis) -> None:
    store = TranscriptStore(redis, log_max=5)
    index = TranscriptIndex(store)
    try:
        await store_done(store, "c0", "north gate")
        assert await index.catch_up() == 1
        for n in range(1, 5):
            await store_done(store, f"c{n}", "north gate")
        assert await index.catch_up() == 4  # the 4 new entries, no rebuild of all 5
        for n in range(5, 9):  # what it saw before c4 is trimmed; c4 itself is still there
            await store_done(store, f"c{n}", "north gate")
        assert await index.catch_up() == 4
        assert len(await index.search("gate", None)) == 9
    finally:
        index.close()


async def test_transcripts_stored_before_the_done_set_are_found_and_join_it(
    redis: Redis,
) -> None:
    store = TranscriptStore(redis)
    for n in range(3):
        await store_done(store, f"c{n}", "north gate")
    await redis.srem(DONE, "c0", "c1")  # as a deployment upgraded from before transcripts:done
    index = TranscriptIndex(store)
    try:
        assert set(await index.search("gate", None)) == {"c0", "c1", "c2"}
        assert await store.done_calls() == ["c0", "c1", "c2"]
    finally:
        index.close()
