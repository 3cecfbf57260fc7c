"""``calls.recent``: a resident's recent calls, kept by the server (issue 32 §5), over real
Socket.IO clients and Redis; a reject shows only at the ring timeout, as ``unanswered``."""

from __future__ import annotations

from typing import Any

import pytest

from client.session import AckError
from tests.conftest import ClientsFactory, Ringing, media_between, ring


async def recent(client: Any) -> list[dict[str, Any]]:
    return list((await client.request("calls.recent"))["calls"])


async def test_each_outcome_is_listed_newest_first_and_a_reject_only_at_the_ring_timeout(
    clients_on: ClientsFactory,
) -> None:
    pool = await clients_on(ring_timeout_s=2.0)
    pair = await ring(pool)
    assert await recent(pair.tablet) == []  # ringing: not yet a recent call
    await pair.tablet.request("call.cancel", {"call_id": pair.call_id})
    [canceled] = await recent(pair.tablet)
    assert canceled["call_id"] == pair.call_id
    assert (canceled["contact_id"], canceled["outcome"], canceled["duration_s"]) == (
        "F1",
        "canceled",
        0,
    )

    rejected = await pair.tablet.place("F1")
    await pair.family.next("call.incoming")
    await pair.family.request("call.reject", {"call_id": rejected})
    # Still ringing for the tablet: its history says nothing of the reject.
    assert [c["call_id"] for c in await recent(pair.tablet)] == [pair.call_id]
    await pair.tablet.next("call.unanswered", timeout=10)
    listed = await recent(pair.tablet)
    assert [(c["call_id"], c["outcome"]) for c in listed] == [
        (rejected, "unanswered"),
        (pair.call_id, "canceled"),
    ]

    talked = await pair.tablet.place("F1")
    await pair.family.next("call.incoming")
    await pair.family.accept(talked)
    await pair.tablet.next("call.accepted")
    async with media_between(Ringing(pair.tablet, pair.family, talked, {})):
        await pair.family.hangup(talked)
        await pair.tablet.next("call.ended")
    ended = (await recent(pair.tablet))[0]
    assert (ended["call_id"], ended["outcome"]) == (talked, "ended")
    assert ended["placed_at"] >= listed[0]["placed_at"]

    # Another tablet session of the same resident sees the same history; another resident none.
    again = await pool.connect("tablet", "R1")
    assert [c["call_id"] for c in await recent(again)] == [talked, rejected, pair.call_id]
    other = await pool.connect("tablet", "R2")
    assert await recent(other) == []


async def test_only_a_tablet_may_ask(clients_on: ClientsFactory) -> None:
    pool = await clients_on()
    family = await pool.connect("family", "F1")
    with pytest.raises(AckError) as refused:
        await family.request("calls.recent")
    assert refused.value.code == "forbidden"
