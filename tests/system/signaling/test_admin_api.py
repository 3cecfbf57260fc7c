"""Facility administration: rate caps enforced on change, contact approval takes effect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from client.session import AckError
from tests.conftest import Clients, Node, accepted, http_as


@pytest.fixture
async def http(node: Node, clients: Clients) -> AsyncIterator[aiohttp.ClientSession]:
    async with http_as(node.url, clients.tokens, "admin", "A1") as session:
        yield session


async def put(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with http.put(path, json=body) as response:
        return response.status, await response.json()


async def test_rate_over_the_cap_is_refused_and_changes_nothing(
    http: aiohttp.ClientSession, redis: Redis
) -> None:
    before = await redis.get("facility:SQ")
    status, body = await put(http, "/api/v1/admin/facilities/SQ", {"rate_cents_per_minute": 26})
    assert status == 422 and body["error"]["code"] == "rate_over_cap"
    assert "26" in body["error"]["message"] and "25" in body["error"]["message"]
    status, body = await put(http, "/api/v1/admin/facilities/SQ", {"max_call_seconds": "long"})
    assert status == 422 and "max_call_seconds" in body["error"]["message"]
    status, body = await put(http, "/api/v1/admin/facilities/SQ", {"colour": "blue"})
    assert status == 422 and "unknown field" in body["error"]["message"]
    assert await redis.get("facility:SQ") == before
    status, body = await put(http, "/api/v1/admin/facilities/NOPE", {"max_call_seconds": 600})
    assert status == 404


async def test_rate_change_applies_to_new_calls(
    http: aiohttp.ClientSession, clients: Clients
) -> None:
    status, body = await put(
        http, "/api/v1/admin/facilities/SQ", {"rate_cents_per_minute": 25, "max_call_seconds": 600}
    )
    assert status == 200 and body["rate_cents_per_minute"] == 25
    family = await clients.connect("family", "F1")
    tablet = await clients.connect("tablet", "R1")
    await tablet.place("F1")
    incoming = await family.next("call.incoming")
    assert (incoming["rate_cents_per_minute"], incoming["max_call_seconds"]) == (25, 600)
    assert incoming["allowed_seconds"] == 600  # min(600, 40 minutes of balance)


async def test_contact_approval(http: aiohttp.ClientSession, clients: Clients) -> None:
    await clients.connect("family", "FPENDING")
    tablet = await clients.connect("tablet", "R1")
    with pytest.raises(AckError) as err:
        await tablet.place("FPENDING")
    assert err.value.code == "not_approved"
    status, _ = await put(http, "/api/v1/admin/contacts/R1/FPENDING", {"status": "approved"})
    assert status == 200
    assert await tablet.place("FPENDING")
    status, _ = await put(http, "/api/v1/admin/contacts/R1/GHOST", {"status": "approved"})
    assert status == 404


async def test_admin_api_needs_an_admin_token(node: Node, clients: Clients) -> None:
    token = clients.tokens.issue("family", "F1")
    async with aiohttp.ClientSession(base_url=node.url) as anonymous:
        async with anonymous.put("/api/v1/admin/facilities/SQ", json={}) as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with anonymous.put(
            "/api/v1/admin/facilities/SQ", json={}, headers=headers
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "forbidden"


async def test_closed_account_makes_future_calls_unavailable(node: Node, clients: Clients) -> None:
    family = await clients.connect("family", "F1")
    async with http_as(node.url, clients.tokens, "family", "F1") as session:
        async with session.post("/api/v1/account/close") as response:
            assert response.status == 200, await response.text()
        async with session.get("/api/v1/account") as response:
            account = await response.json()
            assert (account["balance_cents"], account["status"]) == (0, "closed")
    assert family.sio.connected
    tablet = await clients.connect("tablet", "R1")
    with pytest.raises(AckError) as err:
        await tablet.place("F1")
    assert err.value.code == "unavailable"


async def test_changing_a_contacts_status_keeps_it_privileged(
    http: aiohttp.ClientSession, clients: Clients
) -> None:
    """Re-approving an attorney without restating "privileged" must not make it monitorable."""
    status, body = await put(http, "/api/v1/admin/contacts/R1/FATTY", {"status": "pending"})
    assert (status, body["privileged"]) == (200, True)
    status, body = await put(http, "/api/v1/admin/contacts/R1/FATTY", {"status": "approved"})
    assert (status, body["privileged"]) == (200, True)
    pair = await accepted(clients, "R1", "FATTY")
    monitor = await clients.connect("monitor", "S1")
    ack = await monitor.call("monitor.flag", {"call_id": pair.call_id, "note": "x"})
    assert ack["error"]["code"] == "privileged"
    status, body = await put(
        http, "/api/v1/admin/contacts/R1/FATTY", {"status": "approved", "privileged": False}
    )
    assert (status, body["privileged"]) == (200, False)  # only when said explicitly


async def test_an_admin_reads_its_facilities_settings_and_caps(
    http: aiohttp.ClientSession, node: Node, clients: Clients
) -> None:
    async with http.get("/api/v1/admin/facilities") as response:
        assert response.status == 200
        listed = (await response.json())["facilities"]
    by_id = {f["id"]: f for f in listed}
    assert sorted(by_id) == ["CLOSED", "SQ"]
    assert by_id["SQ"]["rate_cents_per_minute"] == 16 and by_id["SQ"]["max_call_seconds"] == 1800
    assert by_id["SQ"]["rate_cap_cents_per_minute"] == 25  # prison video cap
    assert by_id["SQ"]["calling_hours"] and by_id["SQ"]["timezone"] == "America/Los_Angeles"
    async with http_as(node.url, clients.tokens, "admin", "A2") as scoped:
        async with scoped.get("/api/v1/admin/facilities") as response:
            assert [f["id"] for f in (await response.json())["facilities"]] == ["CLOSED"]
