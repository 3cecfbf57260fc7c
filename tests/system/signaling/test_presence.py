"""Presence on the real Redis, with its clock moved on instead of waiting out its TTL."""

from __future__ import annotations

from redis.asyncio import Redis

from signaling.presence import Presence
from tests.conftest import MovableClock


async def test_a_connection_lapses_once_its_node_stops_refreshing(redis: Redis) -> None:
    clock = MovableClock()
    alive, dead = Presence(redis, "n1", 15.0, clock), Presence(redis, "n2", 15.0, clock)
    await alive.add("s1", "family", "F1")
    await dead.add("s2", "family", "F2")
    assert await alive.is_online("family", "F1") and await alive.is_online("family", "F2")
    clock.advance(10)
    await alive.refresh()  # n2 died: it no longer refreshes
    clock.advance(10)
    assert await alive.is_online("family", "F1")
    assert not await alive.is_online("family", "F2")


async def test_reserve_caps_live_connections_and_an_unused_place_lapses(redis: Redis) -> None:
    clock = MovableClock()
    presence = Presence(redis, "n1", 15.0, clock)
    assert await presence.reserve("s1", "family", "F1", cap=2)
    assert await presence.reserve("s2", "family", "F1", cap=2)
    assert not await presence.reserve("s3", "family", "F1", cap=2)
    clock.advance(16)  # neither reserved place was used
    assert await presence.reserve("s3", "family", "F1", cap=2)
