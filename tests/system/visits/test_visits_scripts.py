"""Every script of visits/ (its .lua files) on its own, on the real Redis, called with KEYS and
ARGV as their headers say: ``book.lua`` (what a booking writes, each refusal writing nothing)
and ``transition.lua`` (a move from an allowed status, the release of the holds, a refused move
changing nothing); and visits' keys follow the scheme. Through the store:
tests/system/visits/test_store.py."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from core.keyspace import collisions
from core.lua import script
from tests.redis_dump import dump
from visits import redis_keys
from visits.redis_keys import (
    FACILITY_VISITS,
    FAMILY_HOLDS,
    FAMILY_VISITS,
    RESIDENT_HOLDS,
    RESIDENT_VISITS,
    SLOT,
    VISIT,
)

SPACE = "visits:*"  # the shared SFU worker keeps writing its own sfu: keys
START, HOUR = 1_000_000, 3600
WEEK = (START - 86400, START + 6 * 86400)


def book_keys(visit_id: str, resident: str, family: str, start: int = START) -> list[str]:
    return [
        VISIT(visit_id),
        SLOT("FAC", start),
        RESIDENT_HOLDS(resident),
        FAMILY_HOLDS(family),
        RESIDENT_VISITS(resident),
        FAMILY_VISITS(family),
        FACILITY_VISITS("FAC"),
    ]


async def book(
    run: AsyncScript,
    visit_id: str,
    resident: str = "R",
    family: str = "F",
    start: int = START,
    *,
    concurrent: int = 2,
    per_week: int = 3,
) -> list[bytes | int]:
    args = [visit_id, start, start + 1800, *WEEK, concurrent, per_week, 4 * HOUR]
    args += ["status", "booked", "resident_id", resident]
    result = await run(keys=book_keys(visit_id, resident, family, start), args=args)
    return list(result)


async def test_book_writes_the_visit_its_holds_and_its_listings(redis: Redis) -> None:
    run = redis.register_script(script("visits", "book.lua"))
    assert await book(run, "v1") == [1, b"booked"]
    assert await redis.hgetall(VISIT("v1")) == {b"status": b"booked", b"resident_id": b"R"}
    assert await redis.smembers(SLOT("FAC", START)) == {b"v1"}
    hold = [(f"{START + 1800}|v1".encode(), float(START))]
    assert await redis.zrange(RESIDENT_HOLDS("R"), 0, -1, withscores=True) == hold
    assert await redis.zrange(FAMILY_HOLDS("F"), 0, -1, withscores=True) == hold
    for listing in (RESIDENT_VISITS("R"), FAMILY_VISITS("F"), FACILITY_VISITS("FAC")):
        assert await redis.zrange(listing, 0, -1, withscores=True) == [(b"v1", float(START))]
    written = sorted(k.decode() for k in await redis.keys(SPACE))
    assert written == sorted(book_keys("v1", "R", "F"))


async def test_book_refusals_write_nothing(redis: Redis) -> None:
    run = redis.register_script(script("visits", "book.lua"))
    assert await book(run, "v1", concurrent=2, per_week=2) == [1, b"booked"]
    before = await dump(redis, SPACE)
    refused = [
        (("v1", "R9", "F9"), {}, b"exists"),  # the visit's id is taken
        (("v2", "R", "F2", START + 900), {}, b"conflict"),  # the resident's time overlaps
        (("v2", "R2", "F", START - 900), {}, b"conflict"),  # the family's time overlaps
        (("v2", "R", "F2", START + 7200), {"per_week": 1}, b"weekly_limit"),
        (("v2", "R2", "F2"), {"concurrent": 1}, b"slot_full"),
    ]
    for call, options, code in refused:
        assert await book(run, *call, **options) == [0, code]  # type: ignore[arg-type]
        assert await dump(redis, SPACE) == before
    # Back to back is not an overlap; a visit that ended before this one started neither.
    assert await book(run, "v3", "R", "F", START + 1800) == [1, b"booked"]


async def test_transition_moves_from_allowed_statuses_and_releases_holds(redis: Redis) -> None:
    await book(redis.register_script(script("visits", "book.lua")), "v1")
    move = redis.register_script(script("visits", "transition.lua"))
    keys = book_keys("v1", "R", "F")[:4]
    hold = f"{START + 1800}|v1"
    # A status that still holds: the slot and the holds stay.
    result = await move(keys=keys, args=["completed", "booked", 1, hold, "v1", "updated_at", "5"])
    assert result == [1, b"booked"]
    assert await redis.hgetall(VISIT("v1")) == {
        b"status": b"completed",
        b"resident_id": b"R",
        b"updated_at": b"5",
    }
    assert await redis.smembers(SLOT("FAC", START)) == {b"v1"}
    # Refused: not from an allowed status, or no such visit. Nothing changes.
    before = await dump(redis, SPACE)
    assert await move(keys=keys, args=["canceled", "booked,requested", 0, hold, "v1"]) == [
        0,
        b"completed",
    ]
    gone = book_keys("v9", "R", "F")[:4]
    assert await move(keys=gone, args=["canceled", "booked", 0, "1|v9", "v9"]) == [0, b""]
    assert await dump(redis, SPACE) == before
    # Leaving the holding statuses gives back the station and both sides' time.
    result = await move(keys=keys, args=["canceled", "completed", 0, hold, "v1", "reason", "x"])
    assert result == [1, b"completed"]
    assert await redis.hget(VISIT("v1"), "status") == b"canceled"
    assert await redis.hget(VISIT("v1"), "reason") == b"x"
    assert not await redis.exists(SLOT("FAC", START), RESIDENT_HOLDS("R"), FAMILY_HOLDS("F"))
    assert await redis.zscore(FACILITY_VISITS("FAC"), "v1") == START  # still listed


def test_visits_keys_follow_the_scheme() -> None:
    assert collisions(redis_keys.KEYS) == []
    assert {key.space for key in redis_keys.KEYS} == {"visits"}
    assert SLOT("FAC", 1800) == "visits:slot:FAC:1800"
    assert RESIDENT_HOLDS("R1") == "visits:holds:resident:R1"
