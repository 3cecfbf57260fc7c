"""core's keys (core/redis_keys.py): in the scheme, and renamed from their old names by the
start-up migration with the data intact; what the directory, the day statistics and the
revocations write is all in the list."""

from __future__ import annotations

from redis.asyncio import Redis

from core import keyspace
from core.directory import Directory
from core.domain import CallingWindow, Contact, Facility, Family, Resident, Staff
from core.facility_stats import FacilityStats
from core.redis_keys import FACILITIES, KEYS, RENAMES, REVOKED_TOKEN, STAFF_INDEX
from core.redis_text import text
from core.revocation import Revocations
from core.tokens import Claims

FACILITY = Facility(
    id="FAC",
    name="North",
    timezone="UTC",
    rate_cents_per_minute=10,
    max_call_seconds=600,
    calling_hours=[CallingWindow(start="00:00", end="00:00")],
)


async def stray(redis: Redis) -> list[str]:
    return keyspace.unknown([text(k) async for k in redis.scan_iter(count=1000)], KEYS)


def test_core_keys_follow_the_scheme() -> None:
    assert not keyspace.collisions(KEYS)
    assert len({key.pattern for key in KEYS}) == len(KEYS)
    assert all(key.about for key in KEYS)
    assert {rename.new for rename in RENAMES} <= set(KEYS)


async def test_what_core_writes_is_all_in_its_keys(redis: Redis) -> None:
    directory = Directory(redis)
    async with redis.pipeline(transaction=True) as pipe:
        directory.queue_facility(pipe, FACILITY)
        directory.queue_resident(pipe, Resident(id="R1", facility_id="FAC", name="Ann"))
        directory.queue_family(pipe, Family(id="F1", name="Bo"))
        directory.queue_contact(pipe, Contact(resident_id="R1", family_id="F1", status="approved"))
        directory.queue_staff(pipe, Staff(id="S1", role="admin", facility_ids=["*"]))
        await pipe.execute()
    resident = await directory.resident("R1")
    assert resident is not None
    await directory.request_contact(resident, "F2", 10.0)
    stats = FacilityStats(redis, clock=lambda: 86400.0)
    await stats.refused("FAC", "UTC", "busy")
    await stats.settled("FAC", "UTC", "c1", 86400.0, 60, 10)
    revocations = Revocations(redis)
    await revocations.revoke("family", "F1")
    await revocations.revoke_token(Claims("family", "F2", 9_000_000_000, 5.0), expires_at=9e9)
    assert await stray(redis) == []
    assert [s.id for s in await directory.all_staff()] == ["S1"]
    assert [f.id for f in await directory.facilities()] == ["FAC"]


async def test_the_renamed_keys_move_with_their_data(redis: Redis) -> None:
    """A deployment's data under the old names (the bare staff and facilities indexes and
    revoked-token:*) is what the directory and the revocations read after the migration."""
    directory = Directory(redis)
    async with redis.pipeline(transaction=True) as pipe:
        directory.queue_facility(pipe, FACILITY)
        directory.queue_staff(pipe, Staff(id="S1", role="admin", facility_ids=["*"]))
        await pipe.execute()
    token = Claims("family", "F1", 9_000_000_000, 5.0)
    await redis.rename(FACILITIES(), "facilities")
    await redis.rename(STAFF_INDEX(), "staff")
    await redis.set(f"revoked-token:{token.token_id}", "1", px=60_000)
    assert await stray(redis) == ["facilities", f"revoked-token:{token.token_id}", "staff"]

    moved = await keyspace.migrate(redis, RENAMES)

    assert moved == {"core-facilities-v1": 1, "core-staff-index-v1": 1, "core-revoked-token-v1": 1}
    assert [f.id for f in await directory.facilities()] == ["FAC"]
    assert [s.id for s in await directory.all_staff()] == ["S1"]
    assert await Revocations(redis).revoked_tokens([token]) == [True]
    assert 0 < await redis.pttl(REVOKED_TOKEN(token.token_id)) <= 60_000  # its TTL kept
    assert await stray(redis) == []  # the migration's own record is core's KEYSPACE_RENAMES
    assert await keyspace.migrate(redis, RENAMES) == {}  # each step runs once
