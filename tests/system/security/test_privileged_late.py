"""Issue 31 §1.5: privileged status is decided again from the contact's current status, not
fixed when the call is placed. A contact an admin marks privileged while the call rings, or
after the answer but before the parties' media, gets a call that is never recorded and never
watched: no recording (file or catalog entry), a monitor's watch refused or ended, and
monitors see the family as null.

Real calls: a real node, the package's real SFU worker (recording into ``recordings_dir``),
real clients and media."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from client.peer import MonitorPeer, PartyPeer, close_all, join_call, watch_call
from client.session import AckError, ProtocolClient
from core.redis_text import text
from core.tokens import Tokens
from media.control import SfuControl
from tests.conftest import (
    FAMILY_CLIP,
    TABLET_CLIP,
    Clients,
    Node,
    Ringing,
    accepted,
    http_as,
    media_between,
    ring,
)
from tests.waiting import eventually

PRIVILEGED_FAMILY = {"id": None, "name": None}


@dataclass(frozen=True)
class Scene:
    """What each test marks the contact with, and looks at the call through: an admin's and an
    investigator's HTTP sessions, the datastore and the recordings directory."""

    admin: aiohttp.ClientSession
    investigator: aiohttp.ClientSession
    redis: Redis
    recordings_dir: Path

    async def mark_privileged(self, resident: str, family: str) -> None:
        body = {"status": "approved", "privileged": True}
        url = f"/api/v1/admin/contacts/{resident}/{family}"
        async with self.admin.put(url, json=body) as response:
            assert response.status == 200, await response.text()

    def files_of(self, call_id: str) -> list[str]:
        return sorted(p.name for p in self.recordings_dir.rglob("*") if call_id in p.name)

    async def room_of(self, call_id: str) -> dict[str, Any]:
        """The call's room as its worker reports it (``recording`` only while it records)."""
        worker = text(await self.redis.hget(f"call:{call_id}", "worker_id") or b"")
        stats = await SfuControl(self.redis).stats(worker)
        room: dict[str, Any] = stats["rooms"][call_id]
        return room

    async def nothing_recorded(self, call_id: str) -> None:
        assert self.files_of(call_id) == []
        async with self.investigator.get(f"/api/v1/recordings/{call_id}") as response:
            assert response.status == 404, await response.text()
        assert not [k async for k in self.redis.scan_iter(f"rec:*{call_id}*")]
        assert await self.redis.zscore("rec:idx:all", call_id) is None

    async def gone_unrecorded(self, call_id: str) -> None:
        """Until the worker has closed the call's room (the end-of-call chain runs after
        hangup); then nothing of it was recorded."""

        async def released() -> bool:
            return not await SfuControl(self.redis).held_by_worker(call_id)

        await eventually(released, "the worker let go of the call")
        await self.nothing_recorded(call_id)


@pytest.fixture
async def scene(
    node: Node, tokens: Tokens, redis: Redis, recordings_dir: Path
) -> AsyncIterator[Scene]:
    async with (
        http_as(node.url, tokens, "admin", "A1") as admin,
        http_as(node.url, tokens, "investigator", "I1") as investigator,
    ):
        yield Scene(admin, investigator, redis, recordings_dir)


async def refused_watch(monitor: ProtocolClient, call_id: str) -> str:
    peer = MonitorPeer(decode=False)
    try:
        with pytest.raises(AckError) as err:
            await watch_call(monitor, call_id, peer)
        return err.value.code
    finally:
        await peer.close()


async def connected_update(monitor: ProtocolClient) -> dict[str, Any]:
    """The monitors' ``monitor.call_updated`` that says the call connected."""
    while (update := await monitor.next("monitor.call_updated"))["state"] != "connected":
        pass
    return update


async def hang_up(pair: Ringing) -> None:
    await pair.tablet.hangup(pair.call_id)
    await pair.family.next("call.ended")


async def privileged_at_connect(
    monitor: ProtocolClient, pair: Ringing, scene: Scene
) -> dict[str, Any]:
    """A watched, recorded call whose contact was marked privileged, as it connects: the watch
    ended (reason ``privileged``), the room unwatched and unrecorded, monitors told the family
    is null, a new watch refused, nothing recorded; then it is hung up. The connected update."""
    ended = await monitor.next("monitor.watch_ended")
    assert ended == {"call_id": pair.call_id, "reason": "privileged"}
    room = await scene.room_of(pair.call_id)
    assert room["privileged"] is True and room["watchers"] == []
    assert "recording" not in room
    update = await connected_update(monitor)
    assert (update["family"], update["privileged"]) == (PRIVILEGED_FAMILY, True)
    assert update["recording"] is False
    assert await refused_watch(monitor, pair.call_id) == "privileged"
    await scene.nothing_recorded(pair.call_id)
    await hang_up(pair)
    return update


async def test_marked_while_ringing_the_call_is_never_recorded_nor_watched(
    clients: Clients, scene: Scene
) -> None:
    monitor = await clients.connect("monitor", "S1")
    pair = await ring(clients, "R1", "F1")  # placed while not privileged
    started = await monitor.next("monitor.call_started")
    assert started["privileged"] is False
    await scene.mark_privileged("R1", "F1")
    await pair.family.accept(pair.call_id)
    await pair.tablet.next("call.accepted")

    updated = await monitor.next("monitor.call_updated")
    assert (updated["privileged"], updated["family"]) == (True, PRIVILEGED_FAMILY)
    assert await refused_watch(monitor, pair.call_id) == "privileged"
    async with media_between(pair):
        room = await scene.room_of(pair.call_id)
        assert room["privileged"] is True and "recording" not in room
        listed = await monitor.request("monitor.calls")
        [call] = [c for c in listed["calls"] if c["call_id"] == pair.call_id]
        assert call["family"] == PRIVILEGED_FAMILY and call["recording"] is False
        assert await refused_watch(monitor, pair.call_id) == "privileged"
        await scene.nothing_recorded(pair.call_id)
        await hang_up(pair)
    await scene.gone_unrecorded(pair.call_id)


async def test_marked_after_the_answer_ends_the_watch_and_deletes_the_recording(
    clients: Clients, scene: Scene
) -> None:
    monitor = await clients.connect("monitor", "S1")
    pair = await accepted(clients, "R1", "F1")  # its room records, a monitor watches
    async with scene.investigator.get(f"/api/v1/recordings/{pair.call_id}") as response:
        assert response.status == 200 and (await response.json())["state"] == "recording"
    assert scene.files_of(pair.call_id)  # the file in progress
    assert "recording" in await scene.room_of(pair.call_id)
    watcher = MonitorPeer(decode=False)
    try:
        await watch_call(monitor, pair.call_id, watcher)
        assert len((await scene.room_of(pair.call_id))["watchers"]) == 1

        await scene.mark_privileged("R1", "F1")  # before any media flows
        async with media_between(pair):
            update = await privileged_at_connect(monitor, pair, scene)
            assert update["watchers"] == 0
    finally:
        await watcher.close()
    await scene.gone_unrecorded(pair.call_id)


async def test_marked_after_the_last_offer_is_decided_again_at_connect(
    clients: Clients, scene: Scene
) -> None:
    """Both offers made while not privileged; the family's media cannot flow before it applies
    the answer, so marking the contact in between is seen at connect, deterministically."""
    monitor = await clients.connect("monitor", "S1")
    pair = await accepted(clients, "R1", "F1")
    tablet, family = PartyPeer(TABLET_CLIP, decode=False), PartyPeer(FAMILY_CLIP, decode=False)
    watcher = MonitorPeer(decode=False)
    try:
        await join_call(pair.tablet, pair.call_id, tablet)
        await watch_call(monitor, pair.call_id, watcher)
        offer = {"call_id": pair.call_id, "sdp": await family.offer()}
        answer = await pair.family.request("rtc.offer", offer)
        assert "recording" in await scene.room_of(pair.call_id)  # still recorded, watched

        await scene.mark_privileged("R1", "F1")
        await family.accept_answer(str(answer["sdp"]))  # now media flows: connect
        connected = await pair.family.next("call.connected")
        assert (await pair.tablet.next("call.connected")) == connected
        await privileged_at_connect(monitor, pair, scene)
    finally:
        await close_all(tablet, family, watcher)
    await scene.gone_unrecorded(pair.call_id)
