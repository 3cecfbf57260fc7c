"""Contact requests (PROTOCOL v1.1): a family finds a resident, asks, an admin of the resident's
facility approves, and the resident can then call them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from redis.asyncio import Redis

from core.directory import Directory
from core.domain import Resident
from tests.conftest import Clients, Node, http_as
from visitation.contacts_api import MAX_PENDING


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, path, json=body) as response:
        return response.status, await response.json()


async def test_facilities_and_resident_search(node: Node, clients: Clients) -> None:
    async with http_as(node.url, clients.tokens, "family", "F1") as family:
        status, body = await call(family, "GET", "/api/v1/facilities")
        assert status == 200
        assert body["facilities"] == [
            {"id": "CLOSED", "name": "Closed Today"},
            {"id": "SQ", "name": "San Quentin"},
        ]
        found = await call(family, "GET", "/api/v1/residents?facility_id=SQ&q=DOE")
        assert found == (
            200,
            {"residents": [{"id": "R1", "name": "James Doe", "facility_id": "SQ"}]},
        )
        status, body = await call(family, "GET", "/api/v1/residents?facility_id=SQ&q=r2")
        assert [r["name"] for r in body["residents"]] == ["John Roe"]  # by id, any case
        status, body = await call(family, "GET", "/api/v1/residents?facility_id=SQ&q=o")
        assert status == 422 and "q" in body["error"]["message"]  # 2 characters at least
        status, body = await call(family, "GET", "/api/v1/residents?facility_id=NOPE&q=doe")
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = await call(family, "GET", "/api/v1/residents?q=doe")
        assert status == 422 and "facility_id" in body["error"]["message"]
    async with http_as(node.url, clients.tokens, "admin", "A2") as admin:
        status, body = await call(admin, "GET", "/api/v1/facilities")
        assert body["facilities"] == [{"id": "CLOSED", "name": "Closed Today"}]  # its own


async def test_a_family_asks_an_admin_approves_and_the_resident_calls(
    node: Node, clients: Clients
) -> None:
    async with (
        http_as(node.url, clients.tokens, "family", "FATTY") as family,
        http_as(node.url, clients.tokens, "admin", "A1") as admin,
        http_as(node.url, clients.tokens, "admin", "A2") as other_admin,
    ):
        assert await call(family, "POST", "/api/v1/account/contacts", {"resident_id": "R2"}) == (
            201,
            {"status": "pending"},
        )
        again = await call(family, "POST", "/api/v1/account/contacts", {"resident_id": "R2"})
        assert again == (200, {"status": "pending"})
        # An existing contact keeps its status: R1 is FATTY's (privileged) attorney contact.
        kept = await call(family, "POST", "/api/v1/account/contacts", {"resident_id": "R1"})
        assert kept == (200, {"status": "approved"})
        status, mine = await call(family, "GET", "/api/v1/account/contacts")
        assert status == 200
        assert mine["contacts"] == [
            {
                "resident": {"id": "R1", "name": "James Doe"},
                "facility": {"id": "SQ", "name": "San Quentin"},
                "status": "approved",
            },
            {
                "resident": {"id": "R2", "name": "John Roe"},
                "facility": {"id": "SQ", "name": "San Quentin"},
                "status": "pending",
            },
        ]
        assert "privileged" not in repr(mine)

        status, queue = await call(admin, "GET", "/api/v1/admin/contacts?status=pending")
        assert status == 200
        [asked] = [c for c in queue["contacts"] if c["family"]["id"] == "FATTY"]
        assert asked["resident"] == {"id": "R2", "name": "John Roe"}
        assert asked["facility"] == {"id": "SQ", "name": "San Quentin"}
        assert asked["status"] == "pending" and asked["requested_at"] > 0
        # An admin of another facility sees nothing of it and cannot answer it.
        status, theirs = await call(other_admin, "GET", "/api/v1/admin/contacts")
        assert status == 200 and theirs["contacts"] == []
        denied = await call(
            other_admin, "PUT", "/api/v1/admin/contacts/R2/FATTY", {"status": "approved"}
        )
        assert denied[0] == 404

        status, _ = await call(
            admin, "PUT", "/api/v1/admin/contacts/R2/FATTY", {"status": "approved"}
        )
        assert status == 200
        status, queue = await call(admin, "GET", "/api/v1/admin/contacts?status=pending")
        assert all(c["family"]["id"] != "FATTY" for c in queue["contacts"])
        status, answered = await call(admin, "GET", "/api/v1/admin/contacts?status=approved")
        assert [c["resident"]["id"] for c in answered["contacts"]] == ["R2"]
        assert (await call(admin, "GET", "/api/v1/admin/contacts?status=maybe"))[0] == 422

    # Approved: the resident can call them now.
    fatty = await clients.connect("family", "FATTY")
    tablet = await clients.connect("tablet", "R2")
    call_id = await tablet.place("FATTY")
    assert (await fatty.next("call.incoming"))["call_id"] == call_id


async def test_bad_requests_change_nothing(node: Node, clients: Clients, redis: Redis) -> None:
    before = sorted(await redis.keys("contact*"))
    async with http_as(node.url, clients.tokens, "family", "F1") as family:
        unknown = await call(family, "POST", "/api/v1/account/contacts", {"resident_id": "R404"})
        assert unknown[0] == 404 and unknown[1]["error"]["code"] == "not_found"
        status, body = await call(family, "POST", "/api/v1/account/contacts", {"resident": "R2"})
        assert status == 422 and body["error"]["code"] == "invalid_request"
        status, body = await call(family, "POST", "/api/v1/account/contacts", {"resident_id": 7})
        assert status == 422
    async with http_as(node.url, clients.tokens, "family", "FNOBODY") as stranger:
        status, body = await call(
            stranger, "POST", "/api/v1/account/contacts", {"resident_id": "R2"}
        )
        assert status == 404
    assert sorted(await redis.keys("contact*")) == before


async def test_a_family_has_a_few_requests_waiting_at_most(
    node: Node, clients: Clients, redis: Redis
) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for n in range(MAX_PENDING + 1):
            resident = Resident(id=f"RW{n}", facility_id="SQ", name=f"Waiting {n}")
            Directory.queue_resident(pipe, resident)
        await pipe.execute()
    async with http_as(node.url, clients.tokens, "family", "F2") as family:
        for n in range(MAX_PENDING):
            asked = await call(
                family, "POST", "/api/v1/account/contacts", {"resident_id": f"RW{n}"}
            )
            assert asked == (201, {"status": "pending"})
        last = {"resident_id": f"RW{MAX_PENDING}"}
        status, body = await call(family, "POST", "/api/v1/account/contacts", last)
        assert status == 409 and body["error"]["code"] == "too_many_pending"
        assert await redis.get(f"contact:RW{MAX_PENDING}:F2") is None
        # Asking again for one that exists is still answered.
        again = await call(family, "POST", "/api/v1/account/contacts", {"resident_id": "RW0"})
        assert again == (200, {"status": "pending"})


async def test_requests_at_once_make_one_contact(node: Node, clients: Clients) -> None:
    async with http_as(node.url, clients.tokens, "family", "FPOOR") as family:
        answers = await asyncio.gather(
            *(
                call(family, "POST", "/api/v1/account/contacts", {"resident_id": "R2"})
                for _ in range(8)
            )
        )
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    async with http_as(node.url, clients.tokens, "admin", "A1") as admin:
        _, queue = await call(admin, "GET", "/api/v1/admin/contacts")
    assert [c["family"]["id"] for c in queue["contacts"]].count("FPOOR") == 1
