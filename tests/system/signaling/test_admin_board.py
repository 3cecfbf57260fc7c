"""The admins' live board: calls now, today's connected calls, minutes and revenue, refusals."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from core.facility_stats import FacilityStats, local_day
from tests.conftest import Clients, Node, accepted, http_as, media_between, ring
from tests.system.signaling.test_calls import place_error


async def board(node: Node, clients: Clients, admin: str = "A1") -> dict[str, Any]:
    async with (
        http_as(node.url, clients.tokens, "admin", admin) as http,
        http.get("/api/v1/admin/board") as response,
    ):
        assert response.status == 200
        return {f["id"]: f for f in (await response.json())["facilities"]}


async def test_the_board_counts_refusals_live_calls_and_settled_calls(
    node: Node, clients: Clients
) -> None:
    assert await place_error(clients, "R3", "F1") == "outside_hours"  # CLOSED is closed today
    assert await place_error(clients, "R1", "FPOOR") == "insufficient_funds"
    shown = await board(node, clients)
    assert shown["CLOSED"]["today"]["refused"] == {"outside_hours": 1}
    assert shown["SQ"]["today"]["refused"] == {"insufficient_funds": 1}
    assert shown["SQ"]["live_calls"] == 0
    # Each admin sees its own facilities only.
    assert list(await board(node, clients, "A2")) == ["CLOSED"]

    pair = await ring(clients, "R2", "F2")
    assert (await board(node, clients))["SQ"]["live"]["ringing"] == 1
    await pair.tablet.hangup(pair.call_id)

    pair = await accepted(clients, "R1", "F1")
    async with media_between(pair):
        assert (await board(node, clients))["SQ"]["live"]["connected"] == 1
        await pair.tablet.hangup(pair.call_id)
        ended = await pair.family.next("call.ended")  # sent once the call is settled
    today = (await board(node, clients))["SQ"]["today"]
    assert (today["calls"], today["revenue_cents"]) == (1, ended["charged_cents"])
    assert today["minutes"] == round(ended["duration_s"] / 60, 1)
    assert (await board(node, clients))["SQ"]["live_calls"] == 0


async def test_a_settled_call_is_counted_once_on_the_day_it_ended(redis: Redis) -> None:
    stats = FacilityStats(redis, clock=lambda: 1_800_000_000.0)
    tz = "America/Los_Angeles"
    for _ in range(3):  # settlement retried
        await stats.settled("SQ", tz, "C1", 1_800_000_000.0, 125, 48)
    await stats.settled("SQ", tz, "C2", 1_800_000_000.0, 30, 16)
    await stats.settled("SQ", tz, "OLD", 1_800_000_000.0 - 86400, 600, 160)  # yesterday
    await stats.refused("SQ", tz, "capacity")
    today = await stats.today("SQ", tz)
    assert today.day == local_day(tz, 1_800_000_000.0) == "2027-01-15"
    assert today.public() == {
        "date": "2027-01-15",
        "calls": 2,
        "minutes": 2.6,
        "revenue_cents": 64,
        "refused": {"capacity": 1},
    }
