"""Calls for visits on a real node and SFU worker: a scheduled facility refuses a call without
a due visit (``not_scheduled``); a due visit placed from the tablet rings the family like any
call, connects, hears the one-minute warning first and ends at the slot's end; the visit is
``completed``."""

from __future__ import annotations

import time

import pytest

from client.session import AckError
from core.domain import SeedFile
from tests.conftest import Clients, MovableClock, Node, NodeFactory, Ringing, media_between
from tests.system.visits.test_life import arm


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def node(start_node: NodeFactory, seeded: SeedFile, clock: MovableClock) -> Node:
    """The node reads ``clock``: a test moves it on to a visit's warning and end."""
    return await start_node(clock)


async def test_a_scheduled_facility_refuses_calls_without_a_due_visit(
    node: Node, clients: Clients
) -> None:
    await clients.connect("family", "FV1")
    tablet = await clients.connect("tablet", "RN1")
    now = time.time()
    later = await arm(node.node.visits, now + 3600, now + 3900)
    for payload in (
        {"contact_id": "FV1"},
        {"contact_id": "FV1", "visit_id": later.visit_id},  # not due for an hour
        {"contact_id": "FV1", "visit_id": "no-such-visit"},
    ):
        with pytest.raises(AckError) as caught:
            await tablet.request("call.place", payload)
        assert caught.value.code == "not_scheduled", payload
    # Another resident's visit is not this tablet's either.
    other = await clients.connect("tablet", "R1")
    with pytest.raises(AckError) as caught:
        await other.request("call.place", {"contact_id": "F1", "visit_id": later.visit_id})
    assert caught.value.code == "not_scheduled"
    # A "both" facility still takes on-demand calls.
    await clients.connect("family", "FV2")
    ondemand = await clients.connect("tablet", "RV1")
    assert await ondemand.place("FV2")


@pytest.mark.timeout(120)
async def test_a_due_visit_rings_connects_and_ends_at_the_slots_end(
    node: Node, clients: Clients, clock: MovableClock
) -> None:
    family = await clients.connect("family", "FV1")
    tablet = await clients.connect("tablet", "RN1")
    now = clock()
    visit = await arm(node.node.visits, now - 60, now + 72)  # due: its slot started a minute ago
    [listed] = (await tablet.request("visits.list"))["visits"]
    assert listed["visit_id"] == visit.visit_id and listed["contact_id"] == "FV1"
    placed = await tablet.request("call.place", {"contact_id": "FV1", "visit_id": visit.visit_id})
    call_id = placed["call_id"]
    incoming = await family.next("call.incoming")
    assert incoming["call_id"] == call_id and incoming["resident"]["id"] == "RN1"
    await tablet.next("call.ringing")
    await family.accept(call_id)
    await tablet.next("call.accepted")

    async with media_between(Ringing(tablet, family, call_id, incoming)) as media:
        connected = media.connected
        assert connected["ends_at"] == pytest.approx(visit.end, abs=1.5)
        assert connected["allowed_seconds"] <= visit.end - now
        clock.advance(connected["ends_at"] - 60 - clock() + 0.5)  # to the warning
        warning = await tablet.next("call.warning", timeout=15)
        assert warning["remaining_s"] == 60
        assert clock() < visit.end
        clock.advance(61)  # to the slot's end
        ended = await family.next("call.ended", timeout=15)
        assert ended["reason"] == "time_limit"
        assert clock() >= visit.end  # not before the slot's end
    stored = await node.node.visits.store.get(visit.visit_id)
    assert stored is not None and stored.call_id == call_id and stored.connected
    update = await family.next("visit.updated", timeout=15)
    assert (update["visit_id"], update["status"]) == (visit.visit_id, "completed")
