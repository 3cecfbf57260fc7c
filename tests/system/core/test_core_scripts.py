"""Every script of core/ (its .lua files) on its own, on the real Redis: the directory's
contact request and the facility statistics' once-per-call count. A refused input changes
nothing: the keyspace is dumped before and after."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from core.lua import script
from core.redis_keys import (
    CONTACT,
    CONTACT_REQUESTS,
    CONTACTS_FOR,
    CONTACTS_OF,
    FACILITY_DAY,
    FACILITY_DAY_CALLS,
)
from tests.redis_dump import dump

REQUEST = [CONTACT("R1", "F1"), CONTACTS_OF("R1"), CONTACTS_FOR("F1"), CONTACT_REQUESTS("FAC")]


async def test_a_contact_request_is_made_once_with_its_indexes(redis: Redis) -> None:
    request = redis.register_script(script("core", "contact_request.lua"))
    assert await request(keys=REQUEST, args=['{"status":"pending"}', "F1", "R1", "12.5"]) is None
    assert await redis.get(CONTACT("R1", "F1")) == b'{"status":"pending"}'
    assert await redis.smembers(CONTACTS_OF("R1")) == {b"F1"}
    assert await redis.smembers(CONTACTS_FOR("F1")) == {b"R1"}
    assert await redis.zrange(CONTACT_REQUESTS("FAC"), 0, -1, withscores=True) == [(b"R1:F1", 12.5)]
    # Asked again (or the contact exists, whatever its status): the contact, nothing written.
    before = await dump(redis)
    again = await request(keys=REQUEST, args=['{"status":"other"}', "F1", "R1", "99"])
    assert again == b'{"status":"pending"}'
    assert await dump(redis) == before


async def test_a_contact_request_without_its_ids_is_refused(redis: Redis) -> None:
    request = redis.register_script(script("core", "contact_request.lua"))
    for args in (["{}", "", "R1", "1"], ["{}", "F1", "", "1"], ["{}", "F1", "R1", "soon"]):
        with pytest.raises(ResponseError, match="invalid"):
            await request(keys=REQUEST, args=args)
    assert await dump(redis) == {}


async def test_a_settled_call_is_counted_once_in_its_day(redis: Redis) -> None:
    settled = redis.register_script(script("core", "facility_stats_settled.lua"))
    keys = [FACILITY_DAY("FAC", "2026-12-07"), FACILITY_DAY_CALLS("FAC", "2026-12-07")]
    assert await settled(keys=keys, args=["c1", 300, 150, 3600]) == 1
    assert await settled(keys=keys, args=["c2", 60, 0, 3600]) == 1
    assert await redis.hgetall(keys[0]) == {
        b"calls": b"2",
        b"connected_seconds": b"360",
        b"revenue_cents": b"150",
    }
    assert await redis.smembers(keys[1]) == {b"c1", b"c2"}
    assert 0 < await redis.ttl(keys[0]) <= 3600 and 0 < await redis.ttl(keys[1]) <= 3600
    await redis.expire(keys[0], 10)
    # A retried settlement counts nothing (it only keeps the day as long again).
    assert await settled(keys=keys, args=["c1", 300, 150, 3600]) == 0
    assert (await redis.hgetall(keys[0]))[b"calls"] == b"2"
    assert await redis.ttl(keys[0]) > 10
    before = await dump(redis)
    bad: list[list[str | int]] = [["", 1, 1, 60], ["c3", -1, 0, 60], ["c3", 1, "x", 60]]
    bad.append(["c3", 1, 1, 0])
    for args in bad:
        with pytest.raises(ResponseError, match="invalid"):
            await settled(keys=keys, args=args)
    assert await dump(redis) == before
