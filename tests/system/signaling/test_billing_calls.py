"""Billing through whole calls with media: caps, warnings, hang-up at the cap, exact charges."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from billing_hooks import Settlement
from signaling.call_state import CallRecord
from signaling.timers import TIMERS_KEY
from tests.conftest import (
    Clients,
    ClientsFactory,
    MovableClock,
    accepted,
    http_as,
    media_between,
)
from tests.seeds import short_seed_data
from tests.waiting import eventually
from visitation.seed import apply_seed, parse_seed

FREE_S = 10  # SPEC rule 6: calls connected for less are free


@dataclass
class Timeline:
    """What a call to its cap showed each party: its ``call.connected``, the family's
    ``call.ended``, and each party's events in the order they came."""

    connected: dict[str, Any] = field(default_factory=dict)
    ended: dict[str, Any] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)


async def run_call_to_its_cap(
    clients: Clients, clock: MovableClock, resident: str, family: str
) -> Timeline:
    """A call moved on (by the node's clock) to one minute before its cap, then to the cap."""
    pair = await accepted(clients, resident, family)
    timeline = Timeline()
    async with media_between(pair) as media:
        timeline.connected = media.connected
        allowed = int(media.connected["allowed_seconds"])
        clock.advance(allowed - 60)  # one minute left: both parties are warned
        for client in (pair.tablet, pair.family):
            warning = await client.next("call.warning", timeout=20)
            assert warning == {"call_id": pair.call_id, "remaining_s": 60}
        clock.advance(60)  # the cap: the call ends itself
        for client, who in ((pair.tablet, "tablet"), (pair.family, "family")):
            ended = await client.next("call.ended", timeout=20)
            timeline.order[who] = [
                event
                for event, data in client.received
                if isinstance(data, dict) and data.get("call_id") == pair.call_id
            ]
            if who == "family":
                timeline.ended = ended
    return timeline


async def test_warning_and_hangup_at_the_cap_from_balance_and_from_facility(
    clients_on: ClientsFactory, redis: Redis
) -> None:
    await apply_seed(redis, parse_seed(json.dumps(short_seed_data())))
    clock = MovableClock()
    clients = await clients_on(clock=clock)
    assert clients.node is not None
    by_balance = await run_call_to_its_cap(clients, clock, "RB", "FB")
    by_facility = await run_call_to_its_cap(clients, clock, "RF", "FF")
    for timeline, allowed, charge, balance in (
        (by_balance, 60, 20, 5),  # cap from the balance: 1 whole minute
        (by_facility, 70, 40, 960),  # cap from the facility's 70 s; 2 started minutes charged
    ):
        assert timeline.connected["allowed_seconds"] == allowed
        for who in ("tablet", "family"):
            events = timeline.order[who]
            assert events.index("call.warning") < events.index("call.ended"), events
        assert timeline.ended["reason"] == "time_limit"
        assert timeline.ended["duration_s"] in (allowed, allowed + 1)
        assert (timeline.ended["charged_cents"], timeline.ended["balance_cents"]) == (
            charge,
            balance,
        )
    node = clients.node
    # The family API agrees with what call.ended said, and nothing is left on hold.
    async with http_as(node.url, clients.tokens, "family", "FF") as http:
        async with http.get("/api/v1/account") as response:
            assert response.status == 200
            assert (await response.json())["balance_cents"] == 960
        async with http.get("/api/v1/account/calls") as response:
            calls = (await response.json())["calls"]
            assert calls[0]["facility"] == {"id": "SHORT", "name": "Short Stay"}
            assert calls[0]["start"] and calls[0]["start"] <= clock()
            assert calls[0]["resident"] == {"id": "RF", "name": "Fac Capped"}
            assert [(c["duration_s"] in (70, 71), c["charged_cents"]) for c in calls] == [
                (True, 40)
            ]
    assert await redis.hget("acct:FF", "held") == b"0"


async def test_hangup_charges_whole_minutes_to_the_family_only(
    clients_on: ClientsFactory,
) -> None:
    clock = MovableClock()
    pair = await accepted(await clients_on(clock=clock))
    async with media_between(pair) as media:
        assert media.connected["allowed_seconds"] == 1800
        clock.advance(FREE_S + 0.5)  # past the free window, without waiting it out
        await pair.family.hangup(pair.call_id)
        family_end = await pair.family.next("call.ended")
        tablet_end = await pair.tablet.next("call.ended")
    assert FREE_S <= family_end["duration_s"] < 60
    assert (family_end["charged_cents"], family_end["balance_cents"]) == (16, 984)
    assert "charged_cents" not in tablet_end and "balance_cents" not in tablet_end


async def test_a_failed_settlement_is_retried_and_charges_once(
    clients_on: ClientsFactory, redis: Redis
) -> None:
    """Settlement interrupted (here: one failure, as in a Redis blip) is finished later."""
    clock = MovableClock()
    pool = await clients_on(settle_retry_s=1.0, clock=clock)
    assert pool.node is not None
    calls = pool.node.node.calls
    real_settle = calls.billing.settle
    failed: list[str] = []

    async def settle_failing_once(record: CallRecord) -> Settlement:
        if not failed:
            failed.append(record.call_id)
            raise ConnectionError("redis went away")
        return await real_settle(record)

    calls.billing.settle = settle_failing_once  # type: ignore[method-assign]  # the fault
    pair = await accepted(pool)
    async with media_between(pair):
        clock.advance(FREE_S + 0.5)  # past the free window, without waiting it out
        await pair.tablet.hangup(pair.call_id)
        assert (await pair.tablet.next("call.ended"))["reason"] == "hangup"
        family_end = await pair.family.next("call.ended", timeout=15)
    assert failed == [pair.call_id]
    assert (family_end["charged_cents"], family_end["balance_cents"]) == (16, 984)
    account = await redis.hmget("acct:F1", "charges", "held")
    assert account == [b"16", b"0"]  # charged once, nothing left on hold
    # Tear-down follows the family's call.ended: the media goes, then the timer is disarmed.
    worker = (await redis.hget(f"call:{pair.call_id}", "worker_id") or b"").decode()

    async def disarmed() -> bool:
        return await redis.zscore(TIMERS_KEY, f"settle|{pair.call_id}") is None

    await eventually(disarmed, "the settle timer disarmed")
    assert pair.call_id.encode() not in await redis.smembers(f"sfu:calls:{worker}")
