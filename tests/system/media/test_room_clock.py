"""A room judges its media timeout by the clock it is given: a test moves that clock on
instead of waiting the timeout out (real aiortc parties on loopback, media flowing)."""

from __future__ import annotations

import asyncio
import time

from client.peer import PartyPeer, close_all
from media.control import EventType, Party
from media.room import Room
from tests.system.media.peers import BLUE, RED


class MovableMonotonic:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[EventType, Party | None]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: EventType, party: Party | None) -> None:
        self.seen.append((kind, party))
        self.changed.set()

    async def wait(self, predicate: object, timeout_s: float = 20.0) -> None:
        async def reached() -> None:
            while not predicate(self.seen):  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(reached(), timeout_s)


async def test_an_hour_on_the_rooms_clock_is_a_media_timeout_though_media_flows() -> None:
    clock, events = MovableMonotonic(), Events()
    room = Room("CLK1", events, media_timeout_s=3600, clock=clock).start()
    tablet, family = PartyPeer(RED, decode=False), PartyPeer(BLUE, decode=False)
    try:
        for name, peer in (("tablet", tablet), ("family", family)):
            await peer.accept_answer(await room.offer(name, await peer.offer()))  # type: ignore[arg-type]
        await events.wait(lambda seen: ("connected", None) in seen)
        assert not [e for e in events.seen if e[0] == "media_lost"]
        assert room.stats()["parties"]["tablet"]["media_age_s"] < 60

        clock.offset = 3601.0  # an hour on: the last packets are that old by this clock
        await events.wait(
            lambda seen: {p for kind, p in seen if kind == "media_lost"} == {"tablet", "family"}
        )
        assert room.stats()["parties"]["tablet"]["media_age_s"] > 3600
    finally:
        await close_all(tablet, family)
        await room.close()
