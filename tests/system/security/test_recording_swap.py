"""Issue 31 §1.1 and §1.2 (each test but the player's failed before the fix).

§1.1 A recording can be swapped: with write access to Redis, call Y's signed manifest stored
under call X. Every read of X and ``verify`` on X must compare the signed manifest's
``call_id`` (and the media object it names) with the request: a mismatch serves nothing, is
``ok: false`` with "manifest belongs to another call", and is audited as such.

§1.2 Downloads dodge the audit: a playback id's requests are counted in bytes; a request
without Range that takes the whole file, or bytes served past the file's size (each time
over), is a ``download`` entry; a playback id belongs to one investigator (the token's
subject) and lives a short time.

A real node (tests/conftest.py ``node``), real Redis, real files, plain HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from core.directory import Directory
from core.domain import Staff
from core.tokens import Tokens
from tests.conftest import Node, http_as
from tests.system.recorder.conftest import record
from tests.system.security.test_http_hostile import json_error

MISMATCH = "manifest belongs to another call"
SIZE = 64 * 1024


@pytest.fixture
async def investigator(node: Node, tokens: Tokens) -> AsyncIterator[aiohttp.ClientSession]:
    async with http_as(node.url, tokens, "investigator", "I1") as session:
        yield session


async def recorded(node: Node, data: bytes) -> str:
    call_id = uuid.uuid4().hex
    await record(node.node.recording.service, call_id, data)
    return call_id


async def audit_of(http: aiohttp.ClientSession, call_id: str) -> list[dict[str, Any]]:
    async with http.get("/api/v1/audit", params={"call_id": call_id}) as response:
        assert response.status == 200, await response.text()
        entries: list[dict[str, Any]] = (await response.json())["entries"]
        return entries


# --------------------------------------------------------------------------- §1.1


async def swap(redis: Redis, victim: str, source: str) -> None:
    """What an attacker with Redis write access does: Y's catalog entry (its signed manifest)
    stored under X."""
    await redis.hset(f"rec:{victim}", mapping=await redis.hgetall(f"rec:{source}"))


async def test_a_manifest_stored_under_another_call_is_refused_and_audited(
    node: Node, investigator: aiohttp.ClientSession, redis: Redis
) -> None:
    x = await recorded(node, b"x" * SIZE)
    y = await recorded(node, b"y" * SIZE)
    await swap(redis, x, y)

    async with investigator.post(f"/api/v1/recordings/{x}/verify") as response:
        assert response.status == 200, await response.text()
        verified = await response.json()
    assert verified["ok"] is False
    assert MISMATCH in verified["problems"]

    for path in (f"/api/v1/recordings/{x}", f"/api/v1/recordings/{x}/media"):
        async with investigator.get(path) as response:
            body = await response.read()
            assert response.status == 409, body
            assert b"y" * 64 not in body  # nothing of Y's media, nor Y's manifest
            assert y.encode() not in body
            error = await response.json()
            assert json_error(error, "manifest_mismatch")
            assert error["error"]["message"] == MISMATCH
    async with investigator.get(
        f"/api/v1/recordings/{x}/media", headers={"Range": "bytes=0-9"}
    ) as response:
        assert response.status == 409

    entries = await audit_of(investigator, x)
    tampered = [e for e in entries if e["outcome"] == "tampered"]
    assert {e["action"] for e in tampered} >= {"verify", "view", "download"}
    assert all(MISMATCH in e["detail"]["problems"] for e in tampered)
    # Y itself is untouched and still verifies.
    async with investigator.post(f"/api/v1/recordings/{y}/verify") as response:
        assert (await response.json())["ok"] is True


async def test_the_manifest_names_its_media_object(
    node: Node, investigator: aiohttp.ClientSession, redis: Redis
) -> None:
    """The signed manifest names the object it hashed; a manifest re-signed for nothing else
    still cannot point X's request at Y's file."""
    x = await recorded(node, b"x" * SIZE)
    async with investigator.get(f"/api/v1/recordings/{x}") as response:
        manifest = await response.json()
    assert manifest["object_key"] == f"{x}.webm"
    assert manifest["call_id"] == x


# --------------------------------------------------------------------------- §1.2


async def media(
    http: aiohttp.ClientSession, call_id: str, playback: str, range_: str | None = None
) -> int:
    headers = {"Range": range_} if range_ else {}
    url = f"/api/v1/recordings/{call_id}/media"
    async with http.get(url, params={"playback": playback}, headers=headers) as response:
        assert response.status in (200, 206), await response.text()
        return len(await response.read())


def actions(entries: list[dict[str, Any]], staff: str = "I1") -> list[str]:
    return [e["action"] for e in entries if e["staff_id"] == staff and e["outcome"] == "ok"]


async def test_a_player_is_one_view(node: Node, investigator: aiohttp.ClientSession) -> None:
    call_id = await recorded(node, b"p" * SIZE)
    served = 0
    for start in range(0, SIZE - 4096, 4096):  # less than the whole file, in Range requests
        served += await media(investigator, call_id, "player-0001", f"bytes={start}-{start + 4095}")
    assert served < SIZE
    assert actions(await audit_of(investigator, call_id)) == ["view"]


async def test_five_full_downloads_are_five_download_entries(
    node: Node, investigator: aiohttp.ClientSession
) -> None:
    call_id = await recorded(node, b"d" * SIZE)
    for _ in range(5):  # no Range: the whole file, each time
        assert await media(investigator, call_id, "same-id-0001") == SIZE
    assert actions(await audit_of(investigator, call_id)).count("download") == 5


async def test_bytes_past_the_size_are_a_download(
    node: Node, investigator: aiohttp.ClientSession
) -> None:
    call_id = await recorded(node, b"r" * SIZE)
    assert await media(investigator, call_id, "ranged-0001", "bytes=0-") == SIZE  # a player's
    assert actions(await audit_of(investigator, call_id)) == ["view"]
    await media(investigator, call_id, "ranged-0001", "bytes=0-0")  # one byte past the size
    assert actions(await audit_of(investigator, call_id)) == ["view", "download"]
    for _ in range(2):  # twice more the whole file, in ranges
        await media(investigator, call_id, "ranged-0001", f"bytes=0-{SIZE // 2 - 1}")
        await media(investigator, call_id, "ranged-0001", f"bytes={SIZE // 2}-")
    assert actions(await audit_of(investigator, call_id)).count("download") == 3
    [entry] = [e for e in await audit_of(investigator, call_id) if e["action"] == "download"][:1]
    assert entry["detail"]["playback"] == "ranged-0001"
    assert entry["detail"]["size"] == SIZE and entry["detail"]["bytes_served"] > SIZE


async def test_a_playback_id_is_its_investigators_and_short_lived(
    node: Node, tokens: Tokens, investigator: aiohttp.ClientSession, redis: Redis
) -> None:
    await Directory(redis).save_staff(Staff(id="I2", role="investigator", facility_ids=["SQ"]))
    call_id = await recorded(node, b"s" * SIZE)
    await media(investigator, call_id, "shared-0001", "bytes=0-1023")
    async with http_as(node.url, tokens, "investigator", "I1") as again:  # same subject
        await media(again, call_id, "shared-0001", "bytes=1024-2047")
    async with http_as(node.url, tokens, "investigator", "I2") as other:
        await media(other, call_id, "shared-0001", "bytes=0-1023")
    entries = await audit_of(investigator, call_id)
    assert actions(entries, "I1") == ["view"]
    assert actions(entries, "I2") == ["view"]  # another investigator's own view
    # Its bytes are counted for a short lifetime only (PLAYBACK_TTL_S, 30 min), not 12 h: the
    # once key and the byte count expire together.
    ttls = [await redis.ttl(k) async for k in redis.scan_iter("audit:playback:*")]
    assert ttls and all(0 < t <= 30 * 60 for t in ttls)
    ttls = [await redis.ttl(k) async for k in redis.scan_iter("audit:once:*")]
    assert ttls and all(0 < t <= 30 * 60 for t in ttls)
