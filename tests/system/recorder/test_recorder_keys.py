"""The recorder's keys follow the scheme, and a deployment's recordings and audit log written
under the old names (``rec:open``, ``rec:idx:*``, ``rec:facilities``, the bare ``audit``) are
found by the catalog and the audit log after the start-up migration, once."""

from __future__ import annotations

from redis.asyncio import Redis

from accounts import redis_keys as accounts_keys
from core.keyspace import VERSION_KEY, collisions, migrate, unknown
from recorder import redis_keys
from recorder.audit import AuditLog
from recorder.catalog import Catalog, Query
from recorder.manifest import Flag, Manifest
from recorder.redis_keys import RECORDING, RENAMES


def manifest(call_id: str, started_at: float, flagged: bool = False) -> Manifest:
    flags = [Flag(flag_id="f1", offset_s=1, note="n", by="M")] if flagged else []
    return Manifest(
        call_id=call_id,
        facility_id="FAC",
        resident_id="R1",
        family_id="F1",
        started_at=started_at,
        tracks=[],
        flags=flags,
    )


async def write_old_catalog(redis: Redis) -> None:
    """What the catalog wrote before the rename: a final flagged call, one still recording."""
    final, open_ = manifest("c1", 100.0, flagged=True), manifest("c2", 200.0)
    await redis.hset("rec:c1", mapping={"manifest": final.model_dump_json(), "state": "final"})
    await redis.hset("rec:c1", "hold", "0")
    await redis.hset("rec:c2", mapping={"manifest": open_.model_dump_json(), "state": "recording"})
    await redis.hset("rec:c2", "hold", "0")
    for key in ("rec:idx:all", "rec:idx:facility:FAC", "rec:idx:resident:R1", "rec:idx:family:F1"):
        await redis.zadd(key, {"c1": 100.0, "c2": 200.0})
    await redis.zadd("rec:idx:flagged", {"c1": 100.0})
    await redis.sadd("rec:open", "c2")
    await redis.sadd("rec:facilities", "FAC")


def test_recorder_keys_follow_the_scheme() -> None:
    assert collisions(redis_keys.KEYS) == []
    assert {key.space for key in redis_keys.KEYS} == {"rec", "recordings", "audit"}
    # Only the recording's hash is in ``rec``: nothing else can be read as one.
    assert [key for key in redis_keys.KEYS if key.space == "rec"] == [RECORDING]
    assert not {key.space for key in accounts_keys.KEYS} & {"rec", "recordings", "audit"}
    for key in redis_keys.KEYS:  # each key is of its own family only
        sample = key(*(f"x{i}" for i in range(len(key.slots))))
        assert [family for family in redis_keys.KEYS if family.matches(sample)] == [key]
    # Why the old names went: ``rec:open`` and ``rec:facilities`` read as recordings' hashes.
    assert {r.name for r in RENAMES if RECORDING.matches(r.old)} == {
        "recorder-open-v1",
        "recorder-facilities-v1",
    }


async def test_old_names_are_migrated_once_and_read_back(redis: Redis) -> None:
    await write_old_catalog(redis)
    audit = AuditLog(redis)
    old_id = await redis.xadd(
        "audit",
        {
            "at": "1.0",
            "staff_id": "I1",
            "role": "investigator",
            "action": "view",
            "call_id": "c1",
            "facility_id": "FAC",
            "outcome": "ok",
            "remote": "",
            "user_agent": "",
            "detail": "{}",
        },
    )
    await redis.rpush("audit:call:c1", old_id)
    await redis.xadd("audit:identity", {"action": "review"})  # accounts' log, moved by accounts
    renames = [*accounts_keys.RENAMES, *RENAMES]

    moved = await migrate(redis, renames)

    assert moved["recorder-index-all-v1"] == 1 and moved["recorder-audit-log-v1"] == 1
    assert moved["recorder-index-facility-v1"] == 1
    names = sorted([key.decode() async for key in redis.scan_iter()])
    assert unknown(names, [*redis_keys.KEYS, *accounts_keys.KEYS]) == [VERSION_KEY]
    catalog = Catalog(redis)
    assert await catalog.open_call_ids() == ["c2"]
    assert await catalog.facility_ids() == ["FAC"]
    found = await catalog.search(Query(facility_id="FAC"), ["*"])
    assert [e.manifest.call_id for e in found] == ["c2", "c1"]
    assert [e.manifest.call_id for e in await catalog.search(Query(flagged=True), ["*"])] == ["c1"]
    assert await catalog.started_before("FAC", 150.0, 10) == ["c1"]
    entries = await audit.for_call("c1")
    assert [(e["id"], e["action"]) for e in entries] == [(old_id.decode(), "view")]
    assert [e["id"] for e in await audit.recent()] == [old_id.decode()]
    # A second start moves nothing; new writes go to the new names.
    assert await migrate(redis, renames) == {}
    assert await catalog.finalize(manifest("c2", 200.0)) is True
    assert await catalog.open_call_ids() == []
    await redis.delete(VERSION_KEY)  # the migration's own bookkeeping, not the recorder's
