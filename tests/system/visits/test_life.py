"""A visit's life on real nodes and their durable timers: the reminder (a real Web Push to a
push service on loopback, and both sockets), ``visit.due``, ``missed`` at the end and nothing
charged, each once even when the node that booked dies before it fires.

Visits here are written through a node's own store and lifecycle with times a few seconds
ahead (as if booked days earlier), so the timers fire now instead of in 15 minutes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis

from accounts.credentials import family_key
from billing_hooks import Ledger
from core.tokens import Tokens
from signaling.timers import TIMERS_KEY
from tests.conftest import Clients, Node, NodeFactory, http_as
from tests.system.accounts.conftest import Mailbox, smtp_server, text_part  # noqa: F401
from tests.system.push.push_service import PushService
from tests.system.visits.conftest import FV1_EMAIL
from tests.waiting import eventually
from visits.record import Visit, VisitStatus
from visits.wiring import Visits


@pytest.fixture
async def push_service(
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: Mailbox,  # noqa: F811
) -> AsyncIterator[PushService]:
    """A push service on loopback, and the nodes' mail to a loopback SMTP server."""
    service = PushService()
    await service.start()
    monkeypatch.setenv("VISITATION_PUSH_ENDPOINTS", service.prefix)
    monkeypatch.setenv("VISITATION_PUSH_CONTACT", "mailto:ops@visitation.test")
    monkeypatch.setenv("VISITATION_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("VISITATION_MAIL_FROM", "visits@example.org")
    yield service
    await service.stop()


async def arm(
    visits: Visits,
    start: float,
    end: float,
    *,
    resident: str = "RN1",
    family: str = "FV1",
    status: VisitStatus = VisitStatus.BOOKED,
) -> Visit:
    """A visit as the node's service stores it, its timers armed."""
    visit = Visit(
        visit_id=uuid.uuid4().hex,
        facility_id="NOW",
        resident_id=resident,
        family_id=family,
        start=int(start),
        end=int(end),
        status=status,
        timezone="UTC",
        facility_name="Facility NOW",
        resident_name=f"Resident {resident}",
        family_name=f"Family {family}",
        created_at=time.time(),
        updated_at=time.time(),
    )
    await visits.store.book(visit, week=(0, 2**40), concurrent=10, max_per_week=100)
    await visits.lifecycle.arm(visit)
    return visit


async def subscribe(node: Node, tokens: Tokens, service: PushService, family: str) -> object:
    device = service.device(f"{family}-phone")
    async with (
        http_as(node.url, tokens, "family", family) as http,
        http.post("/api/v1/account/push-subscriptions", json=device.subscription()) as resp,
    ):
        assert resp.status in (200, 201), await resp.text()
    return device


async def fired(redis: Redis, member: str) -> bool:
    """The timer was handled and removed (it cannot fire again)."""
    return await redis.zscore(TIMERS_KEY, member) is None


async def test_reminder_and_due_fire_once_after_the_booking_node_died(
    start_node: NodeFactory,
    seeded: object,
    tokens: Tokens,
    redis: Redis,
    push_service: PushService,
    smtp_server: Mailbox,  # noqa: F811
) -> None:
    await redis.hset(family_key("FV1"), "email_verified", "1")  # a confirmed address
    booking, other = await start_node(), await start_node()
    async with aiohttp.ClientSession() as http, http.get(f"{other.url}/api/v1/push/key") as r:
        push_service.vapid_public_key = (await r.json())["vapid_public_key"]
    device = await subscribe(other, tokens, push_service, "FV1")
    clients = Clients(tokens, other.url)
    try:
        fam = await clients.connect("family", "FV1")
        tablet = await clients.connect("tablet", "RN1")
        now = time.time()
        # The 15 min reminder of one in 2 s; the due of another (start - 5 min) in 2 s.
        reminded = await arm(booking.node.visits, now + 902, now + 1202)
        due = await arm(booking.node.visits, now + 302, now + 602)
        await booking.stop()  # before either fires: the other node fires both
        for client in (fam, tablet):
            event = await client.next("visit.reminder", timeout=15)
            assert event["visit_id"] == reminded.visit_id and event["before_s"] == 900
            event = await client.next("visit.due", timeout=15)
            assert event["visit_id"] == due.visit_id and event["status"] == "booked"
        [push] = await push_service.wait_for(device, "visit.reminder")  # type: ignore[arg-type]
        assert push.payload["visit_id"] == reminded.visit_id
        assert push.payload["start"] == reminded.start
        assert push.payload["start_local"].endswith("+00:00")
        assert push.payload["resident"] == {"id": "RN1", "name": "Resident RN1"}
        assert 0 < int(push.headers["TTL"]) <= 902 and push.headers["Urgency"] == "normal"
        for member in (f"visit_remind_900|{reminded.visit_id}", f"visit_due|{due.visit_id}"):
            await eventually(lambda m=member: fired(redis, m), f"{member} handled")
        # Fired once: nothing more arrived meanwhile.
        assert len(fam.events_named("visit.reminder")) == 1
        assert len(tablet.events_named("visit.due")) == 1
        assert len(push_service.of(device, "visit.reminder")) == 1  # type: ignore[arg-type]
        mail = await smtp_server.next_to(FV1_EMAIL)
        assert mail["Subject"] == "Reminder: your visit with Resident RN1 in 15 minutes"
        assert "Facility NOW" in text_part(mail) and "/family" in text_part(mail)
        assert len(smtp_server.to(FV1_EMAIL)) == 1
    finally:
        await clients.close_all()


async def test_a_visit_nobody_joined_is_missed_and_costs_nothing(
    node: Node, clients: Clients, redis: Redis
) -> None:
    fam = await clients.connect("family", "FV1")
    tablet = await clients.connect("tablet", "RN1")
    before = (await Ledger(redis).balance("FV1")).available_cents
    now = time.time()
    missed = await arm(node.node.visits, now - 120, now + 1.5)
    unapproved = await arm(
        node.node.visits,
        now - 60,
        now + 1.5,
        resident="RN9",
        family="FV2",
        status=VisitStatus.PENDING,
    )
    for client in (fam, tablet):
        event = await client.next("visit.updated", timeout=15)
        assert (event["visit_id"], event["status"]) == (missed.visit_id, "missed")

    async def canceled() -> bool:
        stored = await node.node.visits.store.get(unapproved.visit_id)
        return stored is not None and stored.status == VisitStatus.CANCELED and bool(stored.reason)

    await eventually(canceled, "a pending visit never approved is canceled at its end")
    assert (await Ledger(redis).balance("FV1")).available_cents == before
    listed = await tablet.request("visits.list")
    assert {v["visit_id"]: v["status"] for v in listed["visits"]} == {missed.visit_id: "missed"}
