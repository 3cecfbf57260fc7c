"""Resident PINs and shared tablets: a device token signs a resident in, and can do nothing else."""

from __future__ import annotations

import statistics
import time
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from accounts.redis_keys import LOCKOUT
from client.session import ProtocolClient, RefusedError
from core.domain import Staff
from core.revocation import Revocations
from core.tokens import Tokens
from tests.conftest import Node
from tests.system.security.conftest import state

PIN = "482915"


@pytest.fixture
async def pins(node: Node, tokens: Tokens) -> None:
    """ASQ: admin of SQ; R1 and R3 (of CLOSED) have PIN ``PIN`` (set by A1)."""
    await node.node.directory.save_staff(Staff(id="ASQ", role="admin", facility_ids=["SQ"]))
    for resident in ("R1", "R3"):
        status, body = await send(node, tokens, "PUT", f"/api/v1/admin/residents/{resident}/pin",
                                  ("admin", "A1"), json={"pin": PIN})  # fmt: skip
        assert status == 200, body


async def send(
    node: Node, tokens: Tokens, method: str, path: str, who: tuple[str, str] | str, **kw: Any
) -> tuple[int, Any]:
    token = who if isinstance(who, str) else tokens.issue(*who)
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, node.url + path, headers={"Authorization": f"Bearer {token}"}, **kw
        ) as response,
    ):
        body = await response.json()
        if response.status == 429:
            body["retry_after"] = response.headers["Retry-After"]
        return response.status, body


async def login(node: Node, tokens: Tokens, resident: str, pin: str, device: str = "SQ") -> Any:
    body = {"resident_id": resident, "pin": pin}
    return await send(node, tokens, "POST", "/api/v1/tablet/login", ("device", device), json=body)


async def test_an_admin_sets_a_pin_stored_as_a_hash(
    node: Node, tokens: Tokens, redis: Redis, pins: None
) -> None:
    status, body = await send(
        node,
        tokens,
        "PUT",
        "/api/v1/admin/residents/R2/pin",
        ("admin", "ASQ"),
        json={"pin": "0042"},
    )
    assert (status, body) == (200, {"resident_id": "R2", "pin": "set"})
    stored = (await redis.get("pin:R2")).decode()
    assert stored.startswith("$argon2id$") and "0042" not in stored
    before = await state(redis)
    for who, resident, pin, expected in [
        (("admin", "ASQ"), "R3", "1234", 404),  # R3 is of CLOSED
        (("admin", "A2"), "R1", "1234", 404),
        (("admin", "A1"), "NOPE", "1234", 404),
        (("admin", "ASQ"), "R2", "123", 422),
        (("admin", "ASQ"), "R2", "123456789", 422),
        (("admin", "ASQ"), "R2", "12a4", 422),
        (("admin", "ASQ"), "R2", "١٢٣٤", 422),  # digits, but not 0-9
        (("device", "SQ"), "R2", "1234", 403),
    ]:
        path = f"/api/v1/admin/residents/{resident}/pin"
        status, body = await send(node, tokens, "PUT", path, who, json={"pin": pin})
        assert status == expected, (who, resident, pin, body)
    assert await state(redis) == before


async def test_a_device_signs_its_resident_in_for_30_minutes(
    node: Node, tokens: Tokens, pins: None
) -> None:
    started = time.time()
    status, body = await login(node, tokens, "R1", PIN)
    assert status == 200, body
    assert set(body) == {"token", "role", "subject", "expires_at"}
    assert (body["role"], body["subject"]) == ("tablet", "R1")
    assert started + 1800 - 2 <= body["expires_at"] <= time.time() + 1800 + 1
    claims = tokens.verify(body["token"])
    assert (claims.role, claims.subject) == ("tablet", "R1")
    async with ProtocolClient(node.url, body["token"]) as tablet:
        assert (await tablet.request("session.info"))["id"] == "R1"
    # Renewed while in use: a fresh 30-minute token for the same resident.
    status, renewed = await send(node, tokens, "POST", "/api/v1/tablet/renew", body["token"])
    assert status == 200 and renewed["subject"] == "R1" and renewed["role"] == "tablet"
    assert renewed["expires_at"] >= body["expires_at"] and renewed["token"] != body["token"]
    status, _ = await send(node, tokens, "POST", "/api/v1/tablet/renew", ("device", "SQ"))
    assert status == 403


async def test_a_resident_of_another_facility_or_unknown_is_refused_alike(
    node: Node, tokens: Tokens, pins: None
) -> None:
    refused = [
        await login(node, tokens, "R3", PIN),  # right PIN, but R3 is of CLOSED
        await login(node, tokens, "NOPE", PIN),
        await login(node, tokens, "R1", "000000"),
        await login(node, tokens, "R2", PIN),  # R2 has no PIN
        await login(node, tokens, "bad id\x00", PIN),
    ]
    assert {status for status, _ in refused} == {401}
    assert len({str(body) for _, body in refused}) == 1
    assert refused[0][1]["error"]["code"] == "invalid_credentials"
    assert (await login(node, tokens, "R3", PIN, device="CLOSED"))[0] == 200


async def test_five_wrong_pins_lock_the_resident(
    node: Node, tokens: Tokens, redis: Redis, pins: None
) -> None:
    for attempt in range(5):
        status, body = await login(node, tokens, "R1", f"99990{attempt}")
        assert status == 401, (attempt, body)
    before = await state(redis)
    status, body = await login(node, tokens, "R1", PIN)  # even the right PIN
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert 890 <= int(body["retry_after"]) <= 900
    # From another tablet too; other residents are not locked.
    assert (await login(node, tokens, "R1", PIN, device="SQ"))[0] == 429
    assert await state(redis) == before  # a locked attempt counts nothing more
    assert (await login(node, tokens, "R3", PIN, device="CLOSED"))[0] == 200
    # An admin's new PIN opens it again.
    status, _ = await send(node, tokens, "PUT", "/api/v1/admin/residents/R1/pin",
                           ("admin", "ASQ"), json={"pin": "7777"})  # fmt: skip
    assert status == 200
    assert (await login(node, tokens, "R1", "7777"))[0] == 200


async def test_an_unknown_resident_costs_a_hash_too(
    node: Node, tokens: Tokens, redis: Redis, pins: None
) -> None:
    """Medians over many tries, alternating: the unknown path costs at least half the known."""
    known: list[float] = []
    unknown: list[float] = []
    for i in range(12):
        for sample, resident in ((known, "R1"), (unknown, f"GHOST{i}")):
            await redis.delete(LOCKOUT("pin", "R1"))
            began = time.perf_counter()
            status, _ = await login(node, tokens, resident, "000000")
            sample.append(time.perf_counter() - began)
            assert status == 401
    assert statistics.median(unknown) >= 0.5 * statistics.median(known), (known, unknown)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/facilities"),
        ("GET", "/api/v1/admin/identity"),
        ("PUT", "/api/v1/admin/residents/R1/pin"),
        ("PUT", "/api/v1/admin/staff/S9"),
        ("POST", "/api/v1/tablet/renew"),
        ("POST", "/api/v1/account/identity"),
        ("GET", "/api/v1/recordings"),
    ],
)
async def test_a_device_token_can_do_nothing_else(
    node: Node, tokens: Tokens, redis: Redis, method: str, path: str
) -> None:
    before = await state(redis)
    status, body = await send(node, tokens, method, path, ("device", "SQ"), json={"pin": "1234"})
    assert status == 403 and body["error"]["code"] == "forbidden", body
    assert await state(redis) == before


async def test_a_device_token_is_refused_at_socket_connect(node: Node, tokens: Tokens) -> None:
    with pytest.raises(RefusedError, match="device"):
        await ProtocolClient(node.url, tokens.issue("device", "SQ")).connect()


async def test_a_revoked_or_orphan_device_signs_no_one_in(
    node: Node, tokens: Tokens, redis: Redis, pins: None
) -> None:
    device = tokens.issue("device", "SQ")
    await Revocations(redis).revoke("device", "SQ")
    body = {"resident_id": "R1", "pin": PIN}
    status, answer = await send(node, tokens, "POST", "/api/v1/tablet/login", device, json=body)
    assert status == 401 and answer["error"]["message"] == "token revoked"
    status, answer = await login(node, tokens, "R1", PIN, device="GONE")
    assert status == 403 and "GONE" in answer["error"]["message"]
