"""Token refusal at connect, role checks, and bad input that must change nothing."""

from __future__ import annotations

import asyncio
import secrets
import time

import jwt
import pytest
from redis.asyncio import Redis

from client.session import ProtocolClient, RefusedError
from core.keys import Purpose, derive_key
from core.rate_limits import KEY_PREFIX
from core.tokens import TokenError, Tokens
from tests.conftest import SECRET, Clients, Node, accepted, ring


def test_token_round_trip_and_refusals() -> None:
    tokens = Tokens(SECRET)
    claims = tokens.verify(tokens.issue("monitor", "S1", ttl_s=60))
    assert (claims.role, claims.subject) == ("monitor", "S1")
    assert claims.expires_at <= time.time() + 60
    with pytest.raises(TokenError, match="missing token"):
        tokens.verify(None)
    with pytest.raises(TokenError, match="invalid token signature"):
        Tokens(b"x" * 32).verify(tokens.issue("family", "F1"))
    with pytest.raises(ValueError, match="unknown role"):
        tokens.issue("warden", "W1")


def expired_token() -> str:
    now = int(time.time())
    payload = {
        "iss": "visitation",
        "sub": "F1",
        "role": "family",
        "iat": now - 100,
        "exp": now - 10,
    }
    return jwt.encode(payload, derive_key(SECRET, Purpose.TOKENS), algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "missing token"),
        ("not-a-jwt", "invalid token"),
        (Tokens(secrets.token_bytes(32)).issue("family", "F1"), "invalid token signature"),
        (expired_token(), "token expired"),
        (Tokens(SECRET).issue("family", "GHOST"), "unknown family 'GHOST'"),
        (Tokens(SECRET).issue("tablet", "GHOST"), "unknown resident 'GHOST'"),
        (Tokens(SECRET).issue("monitor", "I1"), "unknown monitor 'I1'"),  # I1 is an investigator
    ],
)
async def test_connect_refuses_bad_tokens_with_a_reason(
    node: Node, token: str, reason: str
) -> None:
    client = ProtocolClient(node.url, token)
    with pytest.raises(RefusedError) as err:
        await client.connect()
    assert reason in str(err.value)


async def test_connect_without_auth_is_refused(node: Node) -> None:
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(node.url, transports=["websocket"], wait_timeout=5)


@pytest.mark.parametrize(
    ("role", "subject", "event"),
    [
        ("family", "F1", "call.place"),
        ("family", "F1", "call.cancel"),
        ("tablet", "R1", "call.accept"),
        ("tablet", "R1", "call.reject"),
        ("monitor", "S1", "call.place"),
        ("investigator", "I1", "call.hangup"),
        ("tablet", "R1", "monitor.calls"),
    ],
)
async def test_wrong_role_is_forbidden(
    clients: Clients, role: str, subject: str, event: str
) -> None:
    client = await clients.connect(role, subject)
    ack = await client.call(event, {"call_id": "x", "contact_id": "F1"})
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"


BAD_PAYLOADS = [
    "a string",
    ["a", "list"],
    42,
    None,
    {},
    {"contact_id": 17},
    {"contact_id": ""},
    {"contact_id": "x" * 65},
    {"contact_id": ["F1"]},
    {"contact_id": {"$ne": None}},
]


async def state_keys(redis: Redis) -> list[bytes]:
    """Every key but the rate limiters' counters (every event counts, even a refused one)."""
    return sorted(k for k in await redis.keys("*") if not k.startswith(KEY_PREFIX.encode()))


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
async def test_malformed_place_is_invalid_request(
    clients: Clients, redis: Redis, payload: object
) -> None:
    await clients.connect("family", "F1")
    tablet = await clients.connect("tablet", "R1")
    keys_before = await state_keys(redis)
    ack = await tablet.sio.call("call.place", payload, timeout=5)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
    assert ack["error"]["message"]
    assert await state_keys(redis) == keys_before


async def test_unknown_and_foreign_calls_are_not_found(clients: Clients) -> None:
    pair = await ring(clients, "R1", "F1")
    stranger = await clients.connect("family", "F2")
    for event in ("call.accept", "call.reject", "call.hangup"):
        ack = await stranger.call(event, {"call_id": pair.call_id})
        assert ack["error"]["code"] == "not_found", (event, ack)
        ack = await pair.family.call(event, {"call_id": "no-such-call"})
        assert ack["error"]["code"] == "not_found", (event, ack)
    other_tablet = await clients.connect("tablet", "R2")
    ack = await other_tablet.call("call.cancel", {"call_id": pair.call_id})
    assert ack["error"]["code"] == "not_found"
    # None of that touched the call.
    await pair.family.accept(pair.call_id)


async def test_unknown_event_and_extra_arguments(clients: Clients) -> None:
    tablet = await clients.connect("tablet", "R1")
    ack = await tablet.sio.call("call.teleport", {"x": 1}, timeout=5)
    assert ack["error"]["code"] == "invalid_request"
    ack = await tablet.sio.call("call.place", ({"contact_id": "F1"}, "extra"), timeout=5)
    assert ack["error"]["code"] == "invalid_request"


async def test_oversized_payload_leaves_others_unaffected(clients: Clients, node: Node) -> None:
    pair = await accepted(clients)
    bystander = await clients.connect("monitor", "S1")
    attacker = await clients.connect("tablet", "R2")
    ack = await attacker.call("call.place", {"contact_id": "F2", "padding": "x" * 100_000})
    assert ack["ok"] is False  # F2 is offline; the padding itself is ignored, not fatal
    try:
        await attacker.sio.emit("call.place", {"contact_id": "x" * 2_000_000})
        await asyncio.wait_for(attacker.sio.wait(), 5)  # the server drops this one connection
    except Exception:
        pass
    # The server and every other connection still work.
    calls = await bystander.request("monitor.calls")
    assert [c["call_id"] for c in calls["calls"]] == [pair.call_id]
    await pair.tablet.hangup(pair.call_id)
    assert (await pair.family.next("call.ended"))["reason"] == "hangup"
    async with ProtocolClient(node.url, clients.tokens.issue("tablet", "R2")) as again:
        assert (await again.call("monitor.calls"))["error"]["code"] == "forbidden"


async def test_monitor_sees_only_its_facilities(clients: Clients) -> None:
    pair = await accepted(clients)
    sq = await clients.connect("monitor", "S1")
    closed = await clients.connect("monitor", "S2")
    assert [c["call_id"] for c in (await sq.request("monitor.calls"))["calls"]] == [pair.call_id]
    assert (await closed.request("monitor.calls"))["calls"] == []
    summary = (await sq.request("monitor.calls"))["calls"][0]
    assert summary["resident"] == {"id": "R1", "name": "James Doe"}
    assert summary["family"] == {"id": "F1", "name": "Family F1"}
    assert summary["state"] == "accepted" and summary["privileged"] is False
    # Monitors are invisible: nothing the parties received mentions them.
    for client in (pair.tablet, pair.family):
        assert all("watch" not in name and "monitor" not in name for name, _ in client.received)
