"""The visit routes on a real node: slots, booking with every refusal code, the family's list,
cancel and its cutoff, staff approval, deny and cancel with a reason both sides see."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from icalendar import Calendar

from core.tokens import Tokens
from tests.conftest import Clients, Node, NodeFactory, http_as
from tests.system.visits.conftest import RACERS, slot_in

LA = ZoneInfo("America/Los_Angeles")


def family(node: Node, tokens: Tokens, fid: str = "FV1") -> aiohttp.ClientSession:
    return http_as(node.url, tokens, "family", fid)


async def book(
    http: aiohttp.ClientSession, resident: str, start: int, status: int = 201
) -> dict[str, Any]:
    async with http.post("/api/v1/visits", json={"resident_id": resident, "start": start}) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == status, body
        return body


async def refused(
    http: aiohttp.ClientSession, resident: str, start: int, status: int, code: str
) -> None:
    body = await book(http, resident, start, status)
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


async def test_slots_for_an_approved_contact(node: Node, tokens: Tokens) -> None:
    async with family(node, tokens) as http:
        async with http.get("/api/v1/visits/slots", params={"resident_id": "RV1"}) as r:
            assert r.status == 200
            slots = (await r.json())["slots"]
        now = time.time()
        assert slots and all(s["available"] for s in slots)
        assert slots[0]["start"] >= now + 12 * 3600 and slots[-1]["start"] <= now + 14 * 86400
        first = slots[0]
        assert set(first) >= {"start", "start_local", "end", "available"}
        assert first["end"] - first["start"] == 1800
        assert datetime.fromisoformat(first["start_local"]).timestamp() == first["start"]
        assert datetime.fromisoformat(first["start_local"]).utcoffset() in (
            timedelta(hours=-8),
            timedelta(hours=-7),
        )
        start = first["start"]
        await book(http, "RV1", start)
        window = {"resident_id": "RV1", "from": str(start), "to": str(start + 3600)}
        async with http.get("/api/v1/visits/slots", params=window) as r:
            got = (await r.json())["slots"]
        assert [s["start"] for s in got] == [start, start + 1800]
        assert got[0]["taken"] == 1 and got[0]["available"]  # 10 stations
        for params in (
            {"resident_id": "RV1", "from": "x"},
            {"resident_id": "RV1", "from": "10", "to": "5"},
        ):
            async with http.get("/api/v1/visits/slots", params=params) as r:
                assert r.status == 422 and (await r.json())["error"]["code"] == "invalid_request"
    async with family(node, tokens, "FV3") as http:  # a pending contact
        async with http.get("/api/v1/visits/slots", params={"resident_id": "RV1"}) as r:
            assert r.status == 422 and (await r.json())["error"]["code"] == "not_approved"


async def test_book_list_and_both_sides_hear_it(
    node: Node, tokens: Tokens, clients: Clients
) -> None:
    fam = await clients.connect("family", "FV1")
    tablet = await clients.connect("tablet", "RV1")
    start = slot_in(13)
    async with family(node, tokens) as http:
        created = await book(http, "RV1", start)
        assert created["status"] == "booked"
        assert (created["start"], created["end"]) == (start, start + 1800)
        assert isinstance(created["visit_id"], str)
        for client in (fam, tablet):
            event = await client.next("visit.updated")
            assert event["visit_id"] == created["visit_id"] and event["status"] == "booked"
            assert event["start_local"] == datetime.fromtimestamp(start, LA).isoformat()
        later = await book(http, "RV2", slot_in(40))
        async with http.get("/api/v1/account/visits") as r:
            visits = (await r.json())["visits"]
        assert [v["visit_id"] for v in visits] == [created["visit_id"], later["visit_id"]]
        assert visits[0]["status"] == "booked" and visits[0]["resident"]["id"] == "RV1"
        assert visits[0]["cancel_until"] == start - 24 * 3600
    listed = await tablet.request("visits.list")
    assert [v["visit_id"] for v in listed["visits"]] == [created["visit_id"]]
    assert listed["visits"][0]["contact_id"] == "FV1"
    assert (await fam.call("visits.list"))["error"]["code"] == "forbidden"


async def test_every_refusal_code(node: Node, tokens: Tokens) -> None:
    async with family(node, tokens) as http:
        soon = slot_in(1)
        await refused(http, "RV1", soon, 409, "too_soon")
        await refused(http, "RV1", slot_in(15 * 24), 409, "too_far")
        await refused(http, "RV1", slot_in(20) + 600, 422, "outside_hours")
        await refused(http, "RO1", slot_in(20), 422, "not_scheduled")
        await refused(http, "R3", slot_in(20), 422, "not_approved")  # not its contact
        await refused(http, "NOBODY", slot_in(20), 422, "not_approved")
        start = slot_in(20)
        await book(http, "RV1", start)
        await refused(http, "RV2", start, 409, "conflict")  # the family is busy then
        async with family(node, tokens, "FV2") as other:
            await refused(other, "RV1", start, 409, "conflict")  # the resident is
        # The weekly limit (3): a whole local week within the horizon.
        today = datetime.now(LA).date()
        monday = today + timedelta(days=7 - today.weekday())
        week = [
            int(datetime.combine(monday + timedelta(days=d), dtime(10), tzinfo=LA).timestamp())
            for d in range(7)
        ]
        for at in week[1:4]:  # Tuesday to Thursday
            await book(http, "RV2", at)
        await refused(http, "RV2", week[6], 409, "weekly_limit")  # Sunday: the same week
        for body in ({"resident_id": "RV2"}, {"resident_id": "RV2", "start": "soon"}, {"x": 1}):
            async with http.post("/api/v1/visits", json=body) as r:
                assert r.status == 422 and (await r.json())["error"]["code"] == "invalid_request"
    race = slot_in(2)
    for i in range(3):
        async with family(node, tokens, f"FR{i}") as http:
            await book(http, f"RR{i}", race)
    async with family(node, tokens, "FR3") as http:
        await refused(http, "RR3", race, 409, "slot_full")
    async with http_as(node.url, tokens, "tablet", "RV1") as tablet:
        async with tablet.post("/api/v1/visits", json={"resident_id": "RV1", "start": race}) as r:
            assert r.status == 403


async def test_cancel_and_its_cutoff(node: Node, tokens: Tokens, clients: Clients) -> None:
    tablet = await clients.connect("tablet", "RV1")
    async with family(node, tokens) as http:
        late = await book(http, "RV1", slot_in(13))  # inside the 24 h cutoff already
        far = await book(http, "RV1", slot_in(60))
        async with http.delete(f"/api/v1/visits/{late['visit_id']}") as r:
            assert r.status == 409 and (await r.json())["error"]["code"] == "too_late_to_cancel"
        async with http.delete(f"/api/v1/visits/{far['visit_id']}") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "canceled"
        async with http.delete(f"/api/v1/visits/{far['visit_id']}") as r:
            assert r.status == 409 and (await r.json())["error"]["code"] == "too_late_to_cancel"
        async with http.delete("/api/v1/visits/nope") as r:
            assert r.status == 404
        # The slot is free again: booked anew.
        await book(http, "RV1", far["start"])
    async with family(node, tokens, "FV2") as other:
        async with other.delete(f"/api/v1/visits/{late['visit_id']}") as r:
            assert r.status == 404  # not its visit
    statuses = []
    while len(statuses) < 4:
        statuses.append((await tablet.next("visit.updated"))["status"])
    assert statuses == ["booked", "booked", "canceled", "booked"]


async def test_staff_approve_deny_and_cancel_with_a_reason(
    node: Node, tokens: Tokens, clients: Clients
) -> None:
    fam = await clients.connect("family", "FV1")
    tablet = await clients.connect("tablet", "RA1")
    async with family(node, tokens) as http:
        first = await book(http, "RA1", slot_in(20))
        second = await book(http, "RA1", slot_in(30))
        assert first["status"] == second["status"] == "pending"
    admin = http_as(node.url, tokens, "admin", "AV")
    outsider = http_as(node.url, tokens, "admin", "AR")
    async with admin, outsider:
        query = {"facility_id": "APPR", "status": "pending"}
        async with admin.get("/api/v1/admin/visits", params=query) as r:
            assert r.status == 200
            pending = (await r.json())["visits"]
        assert [v["visit_id"] for v in pending] == [first["visit_id"], second["visit_id"]]
        async with outsider.get("/api/v1/admin/visits", params=query) as r:
            assert r.status == 404
        async with outsider.put(
            f"/api/v1/admin/visits/{first['visit_id']}", json={"status": "booked"}
        ) as r:
            assert r.status == 404
        url = f"/api/v1/admin/visits/{first['visit_id']}"
        async with admin.put(url, json={"status": "booked"}) as r:
            assert r.status == 200 and (await r.json())["status"] == "booked"
        async with admin.put(url, json={"status": "booked"}) as r:
            assert r.status == 409 and (await r.json())["error"]["code"] == "invalid_state"
        async with admin.put(url, json={"status": "canceled", "reason": "Lockdown"}) as r:
            assert r.status == 200
        deny = f"/api/v1/admin/visits/{second['visit_id']}"
        async with admin.put(deny, json={"status": "denied", "reason": "No ID on file"}) as r:
            assert r.status == 200 and (await r.json())["reason"] == "No ID on file"
        async with admin.put(deny, json={"status": "completed"}) as r:
            assert r.status == 422
        async with admin.get("/api/v1/admin/visits", params={"facility_id": "APPR"}) as r:
            every = {v["visit_id"]: v for v in (await r.json())["visits"]}
        assert every[first["visit_id"]]["status"] == "canceled"
        assert every[first["visit_id"]]["reason"] == "Lockdown"
        assert every[first["visit_id"]]["canceled_by"] == "staff"
        async with family(node, tokens) as http:
            third = await book(http, "RA1", slot_in(40))
        async with admin.put(
            f"/api/v1/admin/visits/{third['visit_id']}", json={"status": "denied"}
        ) as r:
            assert r.status == 200  # "reason" is optional in the protocol
            assert (await r.json())["reason"] is None
    for client in (fam, tablet):
        seen = [await client.next("visit.updated") for _ in range(5)]
        assert [(e["visit_id"], e["status"]) for e in seen] == [
            (first["visit_id"], "pending"),
            (second["visit_id"], "pending"),
            (first["visit_id"], "booked"),
            (first["visit_id"], "canceled"),
            (second["visit_id"], "denied"),
        ]
        assert seen[3]["reason"] == "Lockdown" and seen[4]["reason"] == "No ID on file"


async def test_admin_visit_settings_are_validated(node: Node, tokens: Tokens) -> None:
    async with http_as(node.url, tokens, "admin", "AV") as admin:
        for bad in ({"slot_minutes": 45}, {"slot_minutes": 300}, {"mode": "sometimes"}, {"x": 1}):
            async with admin.put("/api/v1/admin/facilities/VIS", json={"visits": bad}) as r:
                assert r.status == 422, bad
        async with admin.put(
            "/api/v1/admin/facilities/VIS", json={"visits": {"slot_minutes": 60, "concurrent": 2}}
        ) as r:
            assert r.status == 200
            saved = (await r.json())["visits"]
        assert saved["slot_minutes"] == 60 and saved["concurrent"] == 2
        assert saved["mode"] == "both" and saved["max_per_week"] == 3  # the rest kept
    async with family(node, tokens) as http:
        await refused(http, "RV1", slot_in(20, 60) + 1800, 422, "outside_hours")
        await book(http, "RV1", slot_in(20, 60))


async def test_fifty_bookings_over_two_nodes_give_exactly_three(
    start_node: NodeFactory, seeded: object, tokens: Tokens
) -> None:
    """Families racing for the last stations through two nodes: ``concurrent: 3``, 50
    concurrent POSTs, exactly 3 booked, the rest ``slot_full``."""
    nodes = [await start_node(), await start_node()]
    start = slot_in(3)
    sessions = [family(nodes[i % 2], tokens, f"FR{i}") for i in range(RACERS)]
    try:

        async def one(i: int) -> int:
            async with sessions[i].post(
                "/api/v1/visits", json={"resident_id": f"RR{i}", "start": start}
            ) as r:
                body = await r.json()
                assert r.status == 201 or body["error"]["code"] == "slot_full", body
                return r.status

        statuses = await asyncio.gather(*(one(i) for i in range(RACERS)))
    finally:
        for session in sessions:
            await session.close()
    assert statuses.count(201) == 3 and statuses.count(409) == RACERS - 3


async def test_the_family_calendar_feed(node: Node, tokens: Tokens) -> None:
    async with family(node, tokens) as http:
        booked = await book(http, "RV1", slot_in(13))
        pending = await book(http, "RA1", slot_in(30))
        canceled = await book(http, "RV2", slot_in(60))
        async with http.delete(f"/api/v1/visits/{canceled['visit_id']}") as r:
            assert r.status == 200
        async with http.get("/api/v1/account/visits.ics") as r:
            assert r.status == 200 and r.content_type == "text/calendar"
            feed = Calendar.from_ical(await r.read())
    events = {str(e["uid"]).split("@")[0]: e for e in feed.walk("VEVENT")}
    assert set(events) == {booked["visit_id"], pending["visit_id"], canceled["visit_id"]}
    first = events[booked["visit_id"]]
    assert first.decoded("dtstart").timestamp() == booked["start"]
    assert first.decoded("dtend").timestamp() == booked["end"]
    assert str(first["dtstart"].params["TZID"]) == "America/Los_Angeles"
    assert str(first["summary"]) == "Video visit with Resident RV1"
    assert str(first["location"]) == "Facility VIS"
    assert [str(events[v["visit_id"]]["status"]) for v in (booked, pending, canceled)] == [
        "CONFIRMED",
        "TENTATIVE",
        "CANCELLED",
    ]
    assert {str(tz["tzid"]) for tz in feed.walk("VTIMEZONE")} == {"America/Los_Angeles"}
    async with http_as(node.url, tokens, "tablet", "RV1") as tablet:
        async with tablet.get("/api/v1/account/visits.ics") as r:
            assert r.status == 403
