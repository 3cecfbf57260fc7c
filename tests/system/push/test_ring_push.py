"""Families reached through Web Push (issue 25), end to end through a real push service.

Every message the server sends is decrypted by the test's push service with the subscription's
own keys, and its VAPID JWT verified against the key the server publishes
(:mod:`tests.system.push.push_service`); the ``world`` fixture fails a test that left any problem.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from prometheus_client import REGISTRY

from billing_hooks.metering.biller import CallCharge
from client.session import AckError
from tests.conftest import NodeFactory, http_as
from tests.system.push.conftest import CONTACT, FAMILIES, PushWorld
from tests.waiting import eventually

PAUL = {"id": "P0", "name": "Paul Pine 0"}
PINE_FALLS = {"id": "PF", "name": "Pine Falls"}


async def test_a_family_with_no_socket_rings_through_push_then_connects_and_answers(
    world: PushWorld,
) -> None:
    phone = world.push.device("phone")
    tablet = await world.clients.connect("tablet", "P0")
    with pytest.raises(AckError) as refused:  # neither a socket nor a subscription
        await tablet.place("PF0")
    assert refused.value.code == "unavailable"

    await world.subscribe("PF0", phone)
    call_id = await tablet.place("PF0")  # reachable now: rule 1
    placed_at = time.time()
    [ring] = await world.push.wait_for(phone, "call.incoming")
    assert ring.payload["call_id"] == call_id
    assert ring.payload["resident"] == PAUL
    assert ring.payload["facility"] == PINE_FALLS
    assert placed_at < ring.payload["expires_at"] <= placed_at + 20.0
    assert ring.headers["Urgency"] == "high"
    assert 0 < int(ring.headers["TTL"]) <= 20
    assert ring.headers["Topic"] == call_id
    assert ring.claims["sub"] == CONTACT
    assert ring.claims["aud"] == world.push.origin

    # Opened from the notification: the new socket gets the ringing call at once.
    family = await world.clients.connect("family", "PF0")
    incoming = await family.next("call.incoming", timeout=5)
    assert incoming["call_id"] == call_id
    assert incoming["resident"] == PAUL
    assert incoming["ring_timeout_s"] == 20.0
    await family.accept(call_id)
    assert (await tablet.next("call.accepted"))["call_id"] == call_id
    [stop] = await world.push.wait_for(phone, "call.canceled")  # the other devices stop
    assert stop.payload["call_id"] == call_id and stop.payload["reason"] == "answered"
    assert stop.headers["Topic"] == call_id

    await tablet.hangup(call_id)
    [ended] = await world.push.wait_for(phone, "call.ended")
    assert ended.payload["call_id"] == call_id
    assert ended.payload["charged_cents"] == 0
    assert ended.headers["Urgency"] == "low"
    assert not world.push.of(phone, "call.missed")


async def test_every_device_rings_and_an_unanswered_ring_leaves_a_missed_call(
    world: PushWorld,
) -> None:
    phone, laptop = world.push.device("phone"), world.other.device("laptop")
    await world.subscribe("PF0", phone)
    await world.subscribe("PF0", laptop)
    socket = await world.clients.connect("family", "PF0")
    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")
    assert (await socket.next("call.incoming"))["call_id"] == call_id
    await world.push.wait_for(phone, "call.incoming")
    await world.other.wait_for(laptop, "call.incoming")
    await tablet.request("call.cancel", {"call_id": call_id})
    assert (await socket.next("call.canceled"))["call_id"] == call_id
    for service, device in ((world.push, phone), (world.other, laptop)):
        [stop] = await service.wait_for(device, "call.canceled")
        assert stop.payload["reason"] == "canceled"
        [missed] = await service.wait_for(device, "call.missed")
        assert missed.payload["call_id"] == call_id
        assert missed.payload["resident"] == PAUL
        assert missed.headers["Urgency"] == "normal"
        assert 86000 < int(missed.headers["TTL"]) <= 86400


async def test_a_410_removes_the_subscription(world: PushWorld) -> None:
    phone = world.push.device("phone")
    phone.answer(410)
    sub_id = await world.subscribe("PF0", phone)
    assert [s["id"] for s in await world.subscriptions("PF0")] == [sub_id]
    before = REGISTRY.get_sample_value("visitation_push_failed_total", {"status": "410"}) or 0.0
    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")

    async def removed() -> bool:
        return not await world.subscriptions("PF0")

    await eventually(removed, "the subscription removed after its push service's 410")
    assert phone.requests == 1
    failed = REGISTRY.get_sample_value("visitation_push_failed_total", {"status": "410"})
    assert failed == before + 1
    await tablet.request("call.cancel", {"call_id": call_id})
    with pytest.raises(AckError) as refused:  # no socket, no subscription: unreachable
        await tablet.place("PF0")
    assert refused.value.code == "unavailable"


async def test_429_and_5xx_are_retried_within_the_ttl(world: PushWorld) -> None:
    phone = world.push.device("phone")
    phone.answer(429, times=1)
    await world.subscribe("PF0", phone)
    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")
    [ring] = await world.push.wait_for(phone, "call.incoming", within_s=15)
    assert ring.payload["call_id"] == call_id
    assert phone.requests >= 2
    phone.answer(503, times=1)
    await tablet.request("call.cancel", {"call_id": call_id})
    await world.push.wait_for(phone, "call.missed", within_s=15)


async def test_a_slow_push_service_delays_no_other_call(world: PushWorld) -> None:
    slow = world.other.device("slow-phone")
    slow.answer(201, delay_s=10.0)
    fast = world.push.device("fast-phone")
    await world.subscribe("PF1", slow)
    await world.subscribe("PF2", fast)
    slow_tablet = await world.clients.connect("tablet", "P1")
    slow_call = await slow_tablet.place("PF1")
    await eventually(lambda: slow.requests >= 1, "the slow push service is being waited on")

    family = await world.clients.connect("family", "PF2")
    tablet = await world.clients.connect("tablet", "P2")
    call_id = await asyncio.wait_for(tablet.place("PF2"), 3)
    assert (await family.next("call.incoming", timeout=3))["call_id"] == call_id
    await world.push.wait_for(fast, "call.incoming", within_s=3)
    await asyncio.wait_for(family.accept(call_id), 3)
    assert (await tablet.next("call.accepted", timeout=3))["call_id"] == call_id
    await world.push.wait_for(fast, "call.canceled", within_s=3)
    await asyncio.wait_for(slow_tablet.request("call.cancel", {"call_id": slow_call}), 3)
    await asyncio.wait_for(tablet.hangup(call_id), 3)
    assert (await tablet.next("call.ended", timeout=3))["call_id"] == call_id


async def test_fifty_subscriptions_of_ten_families_ring_within_two_seconds(
    world: PushWorld,
) -> None:
    devices = {f"PF{i}": [world.push.device(f"PF{i}-{d}") for d in range(5)] for i in range(10)}
    for family, family_devices in devices.items():
        for device in family_devices:
            await world.subscribe(family, device)
    tablets = [await world.clients.connect("tablet", f"P{i}") for i in range(FAMILIES)]
    placed_at = time.time()
    call_ids = await asyncio.gather(*(t.place(f"PF{i}") for i, t in enumerate(tablets)))
    for i, call_id in enumerate(call_ids):
        for device in devices[f"PF{i}"]:
            [ring] = await world.push.wait_for(device, "call.incoming", within_s=10)
            assert ring.payload["call_id"] == call_id
    rings = [r for r in world.push.received if r.payload["type"] == "call.incoming"]
    assert len(rings) == 50
    slowest = max(r.at for r in rings) - placed_at
    print(f"50 rings: the last {slowest:.3f} s after call.place")
    assert slowest < 2.0, f"the last of 50 rings arrived {slowest:.2f} s after call.place"


async def test_private_previews_name_nobody(world: PushWorld) -> None:
    phone = world.push.device("phone")
    await world.subscribe("PF0", phone)
    async with (
        world.http("PF0") as http,
        http.put("/api/v1/account/settings", json={"notification_preview": "private"}) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["notification_preview"] == "private"
    async with (
        world.http("PF0") as http,
        http.put("/api/v1/account/settings", json={"notification_preview": "loud"}) as resp,
    ):
        assert resp.status == 422
    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")
    [ring] = await world.push.wait_for(phone, "call.incoming")
    assert set(ring.payload) <= {"type", "call_id", "expires_at", "at", "private"}
    assert ring.payload["call_id"] == call_id and ring.payload["private"] is True
    await tablet.request("call.cancel", {"call_id": call_id})
    [missed] = await world.push.wait_for(phone, "call.missed")
    assert "resident" not in missed.payload and "facility" not in missed.payload


async def test_contact_decisions_and_a_low_balance_are_pushed(world: PushWorld) -> None:
    phone = world.push.device("phone")
    await world.subscribe("PF3", phone)
    async with (
        http_as(world.node.url, world.tokens, "admin", "APF") as http,
        http.put("/api/v1/admin/contacts/P3/PF3", json={"status": "denied"}) as resp,
    ):
        assert resp.status == 200
    [decided] = await world.push.wait_for(phone, "contact.updated")
    assert decided.payload["status"] == "denied"
    assert decided.payload["resident"] == {"id": "P3", "name": "Paul Pine 3"}
    assert decided.payload["facility"] == PINE_FALLS
    assert decided.headers["Urgency"] == "normal"
    assert 604000 < int(decided.headers["TTL"]) <= 604800

    # A 10-minute call at 20 cents leaves $4.00: billing's low_balance event becomes a push.
    biller = world.node.node.billing.biller
    await biller.authorize("call-low", "PF3", 20, 600)
    await biller.settle(CallCharge("call-low", "PF3", 600, "hangup", 20, facility_id="PF"))
    [low] = await world.push.wait_for(phone, "account.low_balance")
    assert low.payload["balance_cents"] == 400
    assert low.headers["Urgency"] == "normal"


async def test_push_metrics_are_served(world: PushWorld) -> None:
    phone = world.push.device("phone")
    await world.subscribe("PF0", phone)
    tablet = await world.clients.connect("tablet", "P0")
    await tablet.place("PF0")
    await world.push.wait_for(phone, "call.incoming")
    async with aiohttp.ClientSession() as http, http.get(f"{world.node.url}/metrics") as resp:
        text = await resp.text()
    assert 'visitation_push_sent_total{type="call.incoming"}' in text
    assert 'visitation_push_outbox_depth{queue="pending"}' in text
    assert "visitation_push_failed_total" in text


async def test_two_nodes_sign_with_one_key_and_one_of_them_sends(
    world: PushWorld, start_node: NodeFactory
) -> None:
    """The second node shares the data dir (as ``serve`` does): same VAPID key; a call placed
    through it rings the subscription made through the first, sent once."""
    second = await start_node(ring_timeout_s=20.0)
    async with aiohttp.ClientSession() as http, http.get(f"{second.url}/api/v1/push/key") as resp:
        assert (await resp.json())["vapid_public_key"] == world.push.vapid_public_key
    phone = world.push.device("phone")
    await world.subscribe("PF0", phone)
    tablet = await world.clients.connect("tablet", "P0", url=second.url)
    call_id = await tablet.place("PF0")
    [ring] = await world.push.wait_for(phone, "call.incoming")  # k checked against the key
    assert ring.payload["call_id"] == call_id
    await tablet.request("call.cancel", {"call_id": call_id})
    await world.push.wait_for(phone, "call.missed")
    assert len(world.push.of(phone, "call.incoming")) == 1
