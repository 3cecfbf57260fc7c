"""Admins manage staff within their own scope, never wider (real node, real Redis)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from accounts.credentials import Credentials
from accounts.passwords import SecretHasher
from accounts.redis_keys import LOGIN_STAFF
from accounts.sealed import SecretSeal
from client.session import ProtocolClient, RefusedError
from core.directory import Directory
from core.domain import Staff
from core.redis_keys import STAFF_INDEX
from core.revocation import Revocations
from core.tokens import Tokens
from tests.conftest import Node
from tests.system.security.conftest import state

PASSWORD = "correct horse battery staple 9"


@pytest.fixture
async def scoped(node: Node) -> None:
    """ASQ: admin of SQ only; MIX: a monitor of SQ and CLOSED (half outside ASQ's scope)."""
    await node.node.directory.save_staff(Staff(id="ASQ", role="admin", facility_ids=["SQ"]))
    await node.node.directory.save_staff(
        Staff(id="MIX", role="monitor", facility_ids=["SQ", "CLOSED"])
    )


async def send(
    node: Node, tokens: Tokens, method: str, path: str, admin: str = "ASQ", **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tokens.issue('admin', admin)}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, headers=headers, **kw) as response,
    ):
        return response.status, await response.json()


async def test_an_admin_adds_staff_of_its_facility_with_a_password(
    node: Node, tokens: Tokens, redis: Redis, scoped: None
) -> None:
    body = {"role": "monitor", "facility_ids": ["SQ"], "password": PASSWORD}
    status, answer = await send(node, tokens, "PUT", "/api/v1/admin/staff/S9", json=body)
    assert status == 201, answer
    assert answer == {"id": "S9", "role": "monitor", "facility_ids": ["SQ"], "manageable": True}
    assert await Directory(redis).staff("S9") == Staff(id="S9", role="monitor", facility_ids=["SQ"])
    stored = await Credentials(redis, SecretHasher()).staff_password_hash("S9")
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert await SecretHasher().verify(stored, PASSWORD)
    # The new monitor is really one: its token connects.
    async with ProtocolClient(node.url, tokens.issue("monitor", "S9")) as monitor:
        assert (await monitor.request("session.info"))["id"] == "S9"
    status, listed = await send(node, tokens, "GET", "/api/v1/admin/staff")
    by_id = {s["id"]: s for s in listed["staff"]}
    assert set(by_id) == {"ASQ", "MIX", "S1", "S9", "I1", "A1"}  # not S2 nor A2 (CLOSED)
    assert by_id["S9"]["manageable"] and by_id["S1"]["manageable"]
    assert by_id["S9"]["otp_enabled"] is False
    assert not by_id["MIX"]["manageable"] and not by_id["I1"]["manageable"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("S9", {"role": "monitor", "facility_ids": ["*"]}, 403, "beyond your own"),
        ("S9", {"role": "admin", "facility_ids": ["CLOSED"]}, 403, "beyond your own"),
        ("S9", {"role": "monitor", "facility_ids": ["SQ", "CLOSED"]}, 403, "beyond your own"),
        ("S2", {"role": "monitor", "facility_ids": ["SQ"]}, 403, "outside yours"),
        ("MIX", {"role": "monitor", "facility_ids": ["SQ"]}, 403, "outside yours"),
        ("I1", {"role": "investigator", "facility_ids": ["SQ"]}, 403, "outside yours"),
        ("S9", {"role": "warden", "facility_ids": ["SQ"]}, 422, "role"),
        ("S9", {"role": "monitor", "facility_ids": []}, 422, "facility_ids"),
        ("S9", {"role": "monitor", "facility_ids": ["SQ"], "extra": 1}, 422, "unknown field"),
        ("S9", {"role": "monitor", "facility_ids": ["SQ"], "password": "short"}, 422, "10"),
        (
            "S9",
            {"role": "monitor", "facility_ids": ["SQ"], "password": "password1234"},
            422,
            "common",
        ),
        ("ASQ", {"role": "monitor", "facility_ids": ["SQ"]}, 409, "its own admin role"),
        ("bad%20id", {"role": "monitor", "facility_ids": ["SQ"]}, 422, "staff id"),
    ],
    ids=lambda v: str(v)[:30],
)
async def test_what_an_admin_may_not_do_changes_nothing(
    node: Node,
    tokens: Tokens,
    redis: Redis,
    scoped: None,
    path: str,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    before = await state(redis)
    got, answer = await send(node, tokens, "PUT", f"/api/v1/admin/staff/{path}", json=body)
    assert got == status, answer
    assert words in answer["error"]["message"], answer
    assert await state(redis) == before


async def test_a_wide_admin_may_give_every_facility(node: Node, tokens: Tokens) -> None:
    body = {"role": "investigator", "facility_ids": ["*"]}
    status, answer = await send(
        node, tokens, "PUT", "/api/v1/admin/staff/I9", admin="A1", json=body
    )
    assert status == 201 and answer["facility_ids"] == ["*"]
    status, answer = await send(
        node, tokens, "PUT", "/api/v1/admin/staff/I9", admin="A1",
        json={"role": "investigator", "facility_ids": ["NOWHERE"]},
    )  # fmt: skip
    assert status == 422 and "NOWHERE" in answer["error"]["message"]


async def test_a_change_of_scope_revokes_older_tokens(
    node: Node, tokens: Tokens, redis: Redis, scoped: None
) -> None:
    issued = time.time()
    monitor = await ProtocolClient(node.url, tokens.issue("monitor", "S1"), "S1").connect()
    try:
        body = {"role": "investigator", "facility_ids": ["SQ"]}
        status, _ = await send(node, tokens, "PUT", "/api/v1/admin/staff/S1", json=body)
        assert status == 200
        assert await Revocations(redis).is_revoked("monitor", "S1", issued, fresh=True)
        assert await monitor.next("session.expired", timeout=3) == {}
    finally:
        await monitor.close()


async def test_delete_removes_and_revokes(
    node: Node, tokens: Tokens, redis: Redis, scoped: None
) -> None:
    body = {"role": "monitor", "facility_ids": ["SQ"], "password": PASSWORD}
    assert (await send(node, tokens, "PUT", "/api/v1/admin/staff/S9", json=body))[0] == 201
    monitor = await ProtocolClient(node.url, tokens.issue("monitor", "S9"), "S9").connect()
    try:
        status, answer = await send(node, tokens, "DELETE", "/api/v1/admin/staff/S9")
        assert (status, answer) == (200, {"id": "S9", "deleted": True})
        assert await monitor.next("session.expired", timeout=3) == {}
    finally:
        await monitor.close()
    assert await Directory(redis).staff("S9") is None
    assert await Credentials(redis, SecretHasher()).staff_password_hash("S9") is None
    with pytest.raises(RefusedError):
        await ProtocolClient(node.url, tokens.issue("monitor", "S9")).connect()
    # Out of scope, or itself: 404 / 409, nothing changed.
    before = await state(redis)
    for staff_id, expected in (("S2", 404), ("MIX", 404), ("I1", 404), ("NOPE", 404), ("ASQ", 409)):
        status, answer = await send(node, tokens, "DELETE", f"/api/v1/admin/staff/{staff_id}")
        assert status == expected, (staff_id, answer)
    assert await state(redis) == before


async def test_staff_stored_before_the_index_are_listed(
    start_node: Any, seeded: Any, tokens: Tokens, redis: Redis
) -> None:
    """A data dir seeded before the staff index existed: the node indexes its staff at start."""
    await redis.delete(STAFF_INDEX())
    node = await start_node()
    status, listed = await send(node, tokens, "GET", "/api/v1/admin/staff", admin="A1")
    assert status == 200
    assert {s["id"] for s in listed["staff"]} == {"S1", "S2", "I1", "A1", "A2"}


async def test_an_admin_resets_a_second_factor_that_no_longer_opens(
    node: Node, tokens: Tokens, redis: Redis, scoped: None
) -> None:
    """A seed sealed under an old server secret: the staff list still answers, the member
    cannot sign in, and an admin's ``reset_otp`` lets it sign in with its password again."""
    body = {"role": "monitor", "facility_ids": ["SQ"], "password": PASSWORD}
    assert (await send(node, tokens, "PUT", "/api/v1/admin/staff/S9", json=body))[0] == 201
    old = SecretSeal.from_secret(b"an old server secret, replaced")
    await redis.hset(LOGIN_STAFF("S9"), "totp", old.seal("JBSWY3DPEHPK3PXP", "S9"))
    status, listed = await send(node, tokens, "GET", "/api/v1/admin/staff")
    assert status == 200
    assert {s["id"]: s["otp_enabled"] for s in listed["staff"]}["S9"] is True
    login = {"staff_id": "S9", "password": PASSWORD, "otp": "123456"}
    async with aiohttp.ClientSession() as http:
        async with http.post(node.url + "/api/v1/login", json=login) as refused:
            assert refused.status == 401
        issued = time.time()
        reset = {**body, "reset_otp": True}
        del reset["password"]
        status, answer = await send(node, tokens, "PUT", "/api/v1/admin/staff/S9", json=reset)
        assert status == 200, answer
        assert await Revocations(redis).is_revoked("monitor", "S9", issued, fresh=True)
        assert await redis.hget(LOGIN_STAFF("S9"), "totp") is None
        del login["otp"]
        async with http.post(node.url + "/api/v1/login", json=login) as signed:
            assert signed.status == 200, await signed.text()
    status, listed = await send(node, tokens, "GET", "/api/v1/admin/staff")
    assert {s["id"]: s["otp_enabled"] for s in listed["staff"]}["S9"] is False
