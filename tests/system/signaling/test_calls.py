"""The call state machine over real Socket.IO clients and a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from client.session import AckError
from core.domain import SeedFile
from signaling.call_machine import RING_TIMEOUT
from signaling.timers import TIMERS_KEY, timer_member
from tests.conftest import Clients, ClientsFactory, NodeFactory, accepted, ring
from tests.waiting import eventually


async def place_error(clients: Clients, resident: str, family: str, online: bool = True) -> str:
    if online:
        await clients.connect("family", family)
    tablet = await clients.connect("tablet", resident)
    with pytest.raises(AckError) as err:
        await tablet.place(family)
    return err.value.code


@pytest.mark.parametrize(
    ("resident", "family", "code"),
    [
        ("R1", "FPENDING", "not_approved"),
        ("R1", "FDENIED", "not_approved"),
        ("R3", "F1", "outside_hours"),
        ("R1", "FUNVERIFIED", "unavailable"),
        ("R1", "FNOVIDEO", "unavailable"),
        ("R1", "FBLOCKS", "unavailable"),
        ("R1", "FBLOCKSALL", "unavailable"),
        ("R1", "FPOOR", "insufficient_funds"),
    ],
)
async def test_place_refusals(clients: Clients, resident: str, family: str, code: str) -> None:
    assert await place_error(clients, resident, family) == code


async def test_offline_family_is_unavailable(clients: Clients) -> None:
    assert await place_error(clients, "R1", "F1", online=False) == "unavailable"


async def test_unknown_contact_is_not_approved(clients: Clients) -> None:
    assert await place_error(clients, "R1", "NOBODY", online=False) == "not_approved"


async def test_unavailable_message_does_not_say_why(clients: Clients) -> None:
    tablet = await clients.connect("tablet", "R1")
    messages = set()
    for family in ("F1", "FUNVERIFIED", "FNOVIDEO", "FBLOCKS", "FBLOCKSALL"):
        if family != "F1":
            await clients.connect("family", family)
        ack = await tablet.call("call.place", {"contact_id": family})
        assert ack["error"]["code"] == "unavailable"
        messages.add(ack["error"]["message"])
    assert len(messages) == 1


async def test_insufficient_funds_reads_the_seeded_balance(clients: Clients, redis: Redis) -> None:
    # FPOOR was seeded with 15 cents through a ledger deposit; the rate is 16 cents a minute.
    assert await place_error(clients, "R1", "FPOOR") == "insufficient_funds"
    from billing_hooks import Ledger

    await Ledger(redis).deposit("FPOOR", 1, "top-up")
    tablet = await clients.connect("tablet", "R1")
    assert await tablet.place("FPOOR")


async def test_busy_when_either_side_is_in_a_call(clients: Clients) -> None:
    pair = await ring(clients, "R1", "F1")
    # The resident is busy: R1 cannot place a second call.
    await clients.connect("family", "F2")
    with pytest.raises(AckError) as err:
        await pair.tablet.place("F2")
    assert err.value.code == "busy"
    # The family is busy: R2 cannot ring F1.
    other = await clients.connect("tablet", "R2")
    with pytest.raises(AckError) as err:
        await other.place("F1")
    assert err.value.code == "busy"


async def test_incoming_carries_every_field(clients: Clients, seeded: SeedFile) -> None:
    pair = await ring(clients)
    assert pair.incoming == {
        "call_id": pair.call_id,
        "resident": {"id": "R1", "name": "James Doe"},
        "facility": {"id": "SQ", "name": "San Quentin"},
        "rate_cents_per_minute": 16,
        "max_call_seconds": 1800,
        "balance_cents": 1000,
        "allowed_seconds": 62 * 60,
        "ring_timeout_s": 45.0,
        "free_seconds": 0,  # v1.2: what the agency pays of this call at most (nothing here)
    } | {"allowed_seconds": min(1800, (1000 // 16) * 60)}


async def test_ring_accept(clients: Clients) -> None:
    pair = await accepted(clients)
    # Accepting twice is refused: the call is no longer ringing.
    with pytest.raises(AckError) as err:
        await pair.family.accept(pair.call_id)
    assert err.value.code == "invalid_state"


async def test_reject_frees_the_family_and_tells_the_tablet_nothing_yet(
    clients_on: ClientsFactory,
) -> None:
    # A long ring timeout: everything below happens well inside it, however busy the machine.
    pool = await clients_on(ring_timeout_s=60.0)
    pair = await ring(pool)
    await pair.family.request("call.reject", {"call_id": pair.call_id})
    # The family is free at once: another resident's call rings on it.
    other = await pool.connect("tablet", "R2")
    other_call = await other.place("F1")
    assert (await pair.family.next("call.incoming"))["call_id"] == other_call
    await other.request("call.cancel", {"call_id": other_call})
    # The resident is still "ringing": busy for another call, told nothing yet.
    await pool.connect("family", "F2")
    with pytest.raises(AckError) as err:
        await pair.tablet.place("F2")
    assert err.value.code == "busy"
    # The rejected call cannot be accepted any more.
    with pytest.raises(AckError) as err:
        await pair.family.accept(pair.call_id)
    assert err.value.code == "invalid_state"
    assert [name for name, _ in pair.tablet.received] == ["call.ringing"]


async def test_tablet_cancel_after_a_hidden_reject_looks_like_any_cancel(
    clients_on: ClientsFactory, redis: Redis
) -> None:
    pool = await clients_on(ring_timeout_s=60.0)
    pair = await ring(pool)
    await pair.family.request("call.reject", {"call_id": pair.call_id})
    # The tablet gives up before the ring timeout: its cancel succeeds as on a ringing call.
    assert await pair.tablet.request("call.cancel", {"call_id": pair.call_id}) == {}
    again = await pair.tablet.place("F1")
    assert (await pair.family.next("call.incoming"))["call_id"] == again
    await pair.tablet.next("call.ringing")
    await pair.tablet.request("call.hangup", {"call_id": again})  # hang up while ringing
    assert await pair.family.next("call.canceled") == {"call_id": again}
    assert [name for name, _ in pair.tablet.received] == ["call.ringing", "call.ringing"]
    # The first call's ring timer went with the cancel: it can never tell the tablet anything.
    assert await redis.zscore(TIMERS_KEY, timer_member(RING_TIMEOUT, pair.call_id)) is None


async def test_ring_timeout_unanswered_and_canceled(clients_on: ClientsFactory) -> None:
    pool = await clients_on(ring_timeout_s=1.0)
    pair = await ring(pool)
    assert pair.incoming["ring_timeout_s"] == 1.0
    assert await pair.tablet.next("call.unanswered", timeout=5) == {"call_id": pair.call_id}
    assert await pair.family.next("call.canceled", timeout=5) == {"call_id": pair.call_id}
    # Reject and timeout look the same to the tablet: nothing else arrived.
    names = [name for name, _ in pair.tablet.received]
    assert names == ["call.ringing", "call.unanswered"]
    with pytest.raises(AckError) as err:
        await pair.family.accept(pair.call_id)
    assert err.value.code == "invalid_state"


async def test_reject_and_timeout_are_indistinguishable(clients_on: ClientsFactory) -> None:
    pool = await clients_on(ring_timeout_s=4.0)
    started = time.monotonic()
    rejected = await ring(pool, "R1", "F1")
    await rejected.family.request("call.reject", {"call_id": rejected.call_id})
    timed_out = await ring(pool, "R2", "F2")
    on_reject = await rejected.tablet.next("call.unanswered", timeout=10)
    rejected_after = time.monotonic() - started
    on_timeout = await timed_out.tablet.next("call.unanswered", timeout=10)
    assert on_reject.keys() == on_timeout.keys() == {"call_id"}
    assert [n for n, _ in rejected.tablet.received] == [n for n, _ in timed_out.tablet.received]
    # Heard no sooner than a ring timeout after the call was placed.
    assert rejected_after >= 4.0


async def test_cancel(clients: Clients) -> None:
    pair = await ring(clients)
    await pair.tablet.request("call.cancel", {"call_id": pair.call_id})
    assert await pair.family.next("call.canceled") == {"call_id": pair.call_id}
    with pytest.raises(AckError) as err:
        await pair.family.accept(pair.call_id)
    assert err.value.code == "invalid_state"


async def test_cancel_after_accept_is_invalid_state(clients: Clients) -> None:
    pair = await accepted(clients)
    with pytest.raises(AckError) as err:
        await pair.tablet.request("call.cancel", {"call_id": pair.call_id})
    assert err.value.code == "invalid_state"


@pytest.mark.parametrize("by", ["tablet", "family"])
async def test_hangup_before_connect(clients: Clients, by: str) -> None:
    pair = await accepted(clients)
    who = pair.tablet if by == "tablet" else pair.family
    await who.hangup(pair.call_id)
    tablet_end = await pair.tablet.next("call.ended")
    family_end = await pair.family.next("call.ended")
    assert tablet_end == {"call_id": pair.call_id, "reason": "hangup", "by": by, "duration_s": 0}
    assert family_end == {
        **tablet_end,
        "charged_cents": 0,
        "balance_cents": 1000,
        "agency_seconds": 0,
    }
    # Both parties are free for a new call.
    assert await pair.tablet.place("F1")


async def test_hangup_while_ringing(clients_on: ClientsFactory) -> None:
    clients = await clients_on(ring_timeout_s=1.0)
    pair = await ring(clients)
    await pair.family.hangup(pair.call_id)  # a reject
    assert await pair.tablet.next("call.unanswered", timeout=10) == {"call_id": pair.call_id}
    pair = await ring(clients, "R2", "F2")
    await pair.tablet.hangup(pair.call_id)
    assert await pair.family.next("call.canceled") == {"call_id": pair.call_id}


async def test_accepted_but_never_connected_ends_connection_lost(
    clients_on: ClientsFactory,
) -> None:
    pool = await clients_on(connect_timeout_s=0.5)
    pair = await accepted(pool)
    ended = await pair.family.next("call.ended", timeout=5)
    assert ended["reason"] == "connection_lost"
    assert ended["charged_cents"] == 0
    assert (await pair.tablet.next("call.ended"))["reason"] == "connection_lost"


async def test_double_accept_resolves_to_one(clients: Clients) -> None:
    pair = await ring(clients)
    second_device = await clients.connect("family", "F1")
    acks = await asyncio.gather(
        *(
            c.call("call.accept", {"call_id": pair.call_id})
            for c in [pair.family, second_device] * 3
        )
    )
    assert sum(1 for a in acks if a["ok"]) == 1
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"invalid_state"}
    await pair.tablet.next("call.accepted")
    # A round trip on the tablet's socket: whatever the server sent it before answering
    # (a second call.accepted, say) has arrived by the time the answer does.
    await pair.tablet.ice_servers()
    assert pair.tablet.pending("call.accepted") == 0


@pytest.mark.parametrize("attempt", range(5))
async def test_accept_races_cancel(clients: Clients, redis: Redis, attempt: int) -> None:
    pair = await ring(clients)
    accept, cancel = await asyncio.gather(
        pair.family.call("call.accept", {"call_id": pair.call_id}),
        pair.tablet.call("call.cancel", {"call_id": pair.call_id}),
    )
    assert accept["ok"] != cancel["ok"], (accept, cancel)
    state = (await redis.hget(f"call:{pair.call_id}", "state")).decode()
    if accept["ok"]:
        assert state == "accepted"
        assert cancel["error"]["code"] == "invalid_state"
        await pair.tablet.next("call.accepted")
    else:
        assert state == "canceled"
        assert accept["error"]["code"] == "invalid_state"
        await pair.family.next("call.canceled")
        assert not await redis.exists("busy:resident:R1", "busy:family:F1")


async def test_tablet_disconnect_while_ringing_cancels(clients: Clients) -> None:
    pair = await ring(clients)
    await pair.tablet.close()
    assert await pair.family.next("call.canceled") == {"call_id": pair.call_id}


async def test_ring_timer_is_durable_and_fired_by_any_node(
    clients_on: ClientsFactory, start_node: NodeFactory, redis: Redis
) -> None:
    pool = await clients_on(ring_timeout_s=1.0)
    assert pool.node is not None
    await pool.node.node.timers.stop()  # this node's timer loop is dead
    pair = await ring(pool)
    due = await redis.zscore(TIMERS_KEY, f"ring_timeout|{pair.call_id}")
    assert due

    def past_due() -> bool:  # on the clock the timers are kept on (ms, the node's time.time)
        return time.time() * 1000 > due + 300

    await eventually(past_due, "the ring timer past due")  # and nobody fired it
    assert await redis.hget(f"call:{pair.call_id}", "state") == b"ringing"
    await start_node()  # another node picks the timer up from Redis
    assert await pair.family.next("call.canceled", timeout=5) == {"call_id": pair.call_id}
    assert await pair.tablet.next("call.unanswered") == {"call_id": pair.call_id}
    assert await redis.hget(f"call:{pair.call_id}", "state") == b"unanswered"
    assert await redis.zscore(TIMERS_KEY, f"ring_timeout|{pair.call_id}") is None


async def test_monitor_terminate_and_flag(clients: Clients, redis: Redis) -> None:
    pair = await accepted(clients)
    monitor = await clients.connect("monitor", "S1")
    outsider = await clients.connect("monitor", "S2")
    ack = await outsider.call("monitor.flag", {"call_id": pair.call_id, "note": "x"})
    assert ack["error"]["code"] == "forbidden"
    flag = await monitor.request("monitor.flag", {"call_id": pair.call_id, "note": "gang sign"})
    assert flag["offset_s"] == 0.0 and flag["flag_id"]
    stored = await redis.lrange(f"call:{pair.call_id}:flags", 0, -1)
    assert b"gang sign" in stored[0]
    ack = await monitor.call("monitor.flag", {"call_id": pair.call_id, "note": "x" * 2049})
    assert ack["error"]["code"] == "invalid_request"
    await monitor.request("monitor.terminate", {"call_id": pair.call_id, "reason": "exposure"})
    for party in (pair.tablet, pair.family):
        ended = await party.next("call.ended")
        assert ended["reason"] == "terminated" and "by" not in ended
    assert (await monitor.next("monitor.call_ended"))["reason"] == "terminated"
    ack = await monitor.call("monitor.terminate", {"call_id": pair.call_id, "reason": "again"})
    assert ack["error"]["code"] == "invalid_state"


async def test_privileged_calls_refuse_monitoring(clients: Clients) -> None:
    pair = await ring(clients, "R1", "FATTY")
    monitor = await clients.connect("monitor", "S1")
    listed = (await monitor.request("monitor.calls"))["calls"]
    assert [(c["call_id"], c["privileged"], c["recording"]) for c in listed] == [
        (pair.call_id, True, False)
    ]
    # Monitors see that the resident is in a privileged call, never with whom.
    assert listed[0]["family"] == {"id": None, "name": None}
    assert listed[0]["resident"]["id"] == "R1"
    await pair.tablet.hangup(pair.call_id)
    ended = await monitor.next("monitor.call_ended")
    assert ended["family"] == {"id": None, "name": None}
    assert "FATTY" not in repr(monitor.received)
    pair = await ring(clients, "R1", "FATTY")
    for event, extra in (("monitor.terminate", {"reason": "x"}), ("monitor.flag", {"note": "x"})):
        ack = await monitor.call(event, {"call_id": pair.call_id, **extra})
        assert ack["error"]["code"] == "privileged", event


async def test_session_info_and_approved_contacts(clients: Clients) -> None:
    tablet = await clients.connect("tablet", "R1")
    info = await tablet.request("session.info")
    assert info == {
        "role": "tablet",
        "id": "R1",
        "name": "James Doe",
        "facility_ids": ["SQ"],
        "ice_servers": [],  # none configured (see test_ice_servers.py)
    }
    contacts = (await tablet.request("contacts.list"))["contacts"]
    ids = {c["id"] for c in contacts}
    assert {"F1", "F2", "FATTY"} <= ids and not {"FPENDING", "FDENIED"} & ids
    assert [c["privileged"] for c in contacts if c["id"] == "FATTY"] == [True]
    family = await clients.connect("family", "F1")
    assert (await family.request("session.info"))["name"] == "Family F1"
    ack = await family.call("contacts.list")
    assert ack["error"]["code"] == "forbidden"


async def test_place_answers_capacity_when_every_live_worker_is_full(
    clients: Clients, redis: Redis
) -> None:
    """Admission at the door: a live worker at its limit (or too late, or too busy) takes no
    new call, and the tablet hears ``capacity`` before anything rings."""
    from media.control import SfuControl, WorkerStatus
    from media.redis_keys import ALIVE, WORKER_CALLS, WORKERS

    def status(**fields: float) -> str:
        base = {"calls": 1, "load": 0.1, "pid": 1, "started_at": 0.0, "max_calls": 2}
        return WorkerStatus.model_validate(base | fields).model_dump_json()

    # Workers other tests left running share this Redis: fill them up with placeholder calls.
    others = await SfuControl(redis).live_workers()
    fillers = {w: [f"filler-{w}-{i}" for i in range(st.max_calls)] for w, st in others.items()}
    for worker, ids in fillers.items():
        await redis.sadd(WORKER_CALLS(worker), *ids)
    await redis.sadd(WORKERS(), "full-w")
    await redis.sadd(WORKER_CALLS("full-w"), "C-a", "C-b")  # 2 calls of its 2
    await redis.set(ALIVE("full-w"), status(), px=60_000)
    try:
        assert await place_error(clients, "R1", "F1") == "capacity"
        await redis.srem(WORKER_CALLS("full-w"), "C-b")  # room again ...
        await redis.set(ALIVE("full-w"), status(loop_lag_avg_ms=900), px=60_000)
        assert await place_error(clients, "R1", "F1", online=False) == "capacity"  # ... but late
        await redis.set(ALIVE("full-w"), status(load=0.97), px=60_000)
        assert await place_error(clients, "R1", "F1", online=False) == "capacity"  # ... or busy
        # ... or idle so far, but its calls just opened would fill its core once their media
        # shows in its load (a burst of calls): 2 calls at 0.45 of a core each is 0.9.
        await redis.set(ALIVE("full-w"), status(load=0.05, call_cost=0.45), px=60_000)
        assert await place_error(clients, "R1", "F1", online=False) == "capacity"
        await redis.set(ALIVE("full-w"), status(), px=60_000)
        tablet = await clients.connect("tablet", "R1")
        assert await tablet.place("F1")  # room, on time, not busy: it rings
    finally:
        await redis.delete(ALIVE("full-w"), WORKER_CALLS("full-w"))
        await redis.srem(WORKERS(), "full-w")
        for worker, ids in fillers.items():
            await redis.srem(WORKER_CALLS(worker), *ids)
