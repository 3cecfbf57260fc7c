"""Whole calls with media: real Socket.IO clients, real aiortc peers, a real SFU worker process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from client.media import ClipSpec
from client.peer import MonitorPeer, PartyPeer, watch_call
from client.session import AckError
from media.control import SfuControl
from tests.conftest import Clients, ClientsFactory, Ringing, accepted, media_between, ring
from tests.waiting import eventually

# Keyframes only every 4 s: a viewer that sees a picture within 1 s got it through PLI relay.
RED = ClipSpec(colour="red", keyframe_interval_s=4.0, duration_s=4.0)
BLUE = ClipSpec(colour="blue", keyframe_interval_s=4.0, duration_s=4.0)


@dataclass
class LiveCall:
    pair: Ringing
    tablet: PartyPeer
    family: PartyPeer
    connected: dict[str, object]


@pytest.fixture
async def live_call(clients: Clients) -> AsyncIterator[LiveCall]:
    """A tablet (red clip) and a family (blue clip) in a connected call."""
    pair = await accepted(clients)
    async with media_between(pair, decode=True, tablet=RED, family=BLUE) as media:
        yield LiveCall(pair, media.tablet, media.family, media.connected)


async def test_each_party_sees_the_other_and_a_late_monitor_sees_both(
    live_call: LiveCall, clients: Clients, redis: Redis
) -> None:
    pair = live_call.pair
    assert live_call.connected["call_id"] == pair.call_id
    assert live_call.connected["allowed_seconds"] == 1800  # min(max length, 62 whole minutes)
    assert abs(float(live_call.connected["ends_at"]) - (time.time() + 1800)) < 5  # type: ignore[arg-type]
    # Each party decodes the other's picture (red tablet, blue family).
    await live_call.tablet.sinks["video"].wait_for(decoded=10)
    await live_call.family.sinks["video"].wait_for(decoded=10)
    await live_call.tablet.sinks["audio"].wait_for(frames=10)
    await live_call.family.sinks["audio"].wait_for(frames=10)
    assert live_call.tablet.sinks["video"].main_colour == "blue"
    assert live_call.family.sinks["video"].main_colour == "red"

    monitor = await clients.connect("monitor", "S1")
    watcher = MonitorPeer()
    try:
        await watch_call(monitor, pair.call_id, watcher)
        answered = time.monotonic()
        resident, family = watcher.sinks["resident"]["video"], watcher.sinks["family"]["video"]
        await asyncio.wait_for(
            asyncio.gather(resident.first_decoded.wait(), family.first_decoded.wait()), 1.0
        )
        assert resident.first_decoded_at is not None and family.first_decoded_at is not None
        assert max(resident.first_decoded_at, family.first_decoded_at) - answered < 1.0
        await resident.wait_for(decoded=5)
        await family.wait_for(decoded=5)
        assert (resident.main_colour, family.main_colour) == ("red", "blue")
        listed = (await monitor.request("monitor.calls"))["calls"]
        assert [(c["call_id"], c["state"], c["watchers"], c["recording"]) for c in listed] == [
            (pair.call_id, "connected", 1, True)
        ]
        # A second monitor watches the same call at the same time, then stops.
        second_monitor = await clients.connect("monitor", "S1")
        second = MonitorPeer(decode=False)
        try:
            await watch_call(second_monitor, pair.call_id, second)
            await second.sinks["family"]["video"].wait_for(keyframes=1)
            await second.sinks["resident"]["video"].wait_for(keyframes=1)
            listed = (await monitor.request("monitor.calls"))["calls"]
            assert listed[0]["watchers"] == 2
            await second_monitor.request("monitor.unwatch", {"call_id": pair.call_id})
            listed = (await monitor.request("monitor.calls"))["calls"]
            assert listed[0]["watchers"] == 1
            frames = resident.decoded
            await resident.wait_for(decoded=frames + 5)  # the first monitor is unaffected
        finally:
            await second.close()
        # Invisible: nothing the parties received mentions the monitor.
        for party in (pair.tablet, pair.family):
            assert all("monitor" not in str(item) for item in party.received)

        await pair.tablet.hangup(pair.call_id)
        for party in (pair.tablet, pair.family):
            ended = await party.next("call.ended")
            assert ended["reason"] == "hangup" and ended["by"] == "tablet"
        assert (await monitor.next("monitor.call_ended"))["reason"] == "hangup"
        # Hang-up freed the worker (the room is closed after the ack, off the hang-up's path).
        worker = (await redis.hget(f"call:{pair.call_id}", "worker_id") or b"").decode()

        async def room_closed() -> bool:
            return pair.call_id.encode() not in await redis.smembers(f"sfu:calls:{worker}")

        await eventually(room_closed, "the call's room closed")
        stats = await SfuControl(redis).stats(worker)
        assert pair.call_id not in str(stats)
    finally:
        await watcher.close()


async def test_connection_quality_reaches_the_family_and_the_monitors(
    live_call: LiveCall, clients: Clients
) -> None:
    pair = live_call.pair
    monitor = await clients.connect("monitor", "S1")
    elsewhere = await clients.connect("monitor", "S2")  # another facility
    for receiver in (pair.family, monitor):  # the worker reports on change and every 10 s
        quality = await receiver.next("call.quality", timeout=25)
        assert quality["call_id"] == pair.call_id
        for party in ("tablet", "family"):
            assert set(quality[party]) == {"level", "rtt_ms", "jitter_ms", "loss_pct"}
            assert quality[party]["level"] in ("good", "fair", "poor", "unknown")
    assert quality["tablet"]["level"] != "unknown"
    assert not pair.tablet.events_named("call.quality")  # no badge on the tablet
    assert not elsewhere.events_named("call.quality")


async def test_no_decoder_or_encoder_runs_in_the_worker(live_call: LiveCall, redis: Redis) -> None:
    await live_call.tablet.sinks["video"].wait_for(decoded=10)
    await live_call.family.sinks["video"].wait_for(decoded=10)
    worker = (await redis.hget(f"call:{live_call.pair.call_id}", "worker_id") or b"").decode()
    stats = await SfuControl(redis).stats(worker)
    assert (stats["decoders"], stats["encoders"]) == (0, 0), stats["codecs"]


async def test_monitor_terminate_ends_a_live_call(live_call: LiveCall, clients: Clients) -> None:
    monitor = await clients.connect("monitor", "S1")
    await monitor.request(
        "monitor.terminate", {"call_id": live_call.pair.call_id, "reason": "indecent exposure"}
    )
    for party in (live_call.pair.tablet, live_call.pair.family):
        assert (await party.next("call.ended"))["reason"] == "terminated"


async def test_offer_errors(clients: Clients) -> None:
    pair = await ring(clients)
    peer = PartyPeer(RED)
    try:
        sdp = await peer.offer()
        ack = await pair.tablet.call("rtc.offer", {"call_id": pair.call_id, "sdp": sdp})
        assert ack["error"]["code"] == "invalid_state"  # before accept
        await pair.family.accept(pair.call_id)
        ack = await pair.tablet.call("rtc.offer", {"call_id": pair.call_id, "sdp": "v=0 nonsense"})
        assert ack["error"]["code"] == "invalid_sdp"
        h264 = sdp.replace("VP8/90000", "H264/90000")
        ack = await pair.tablet.call("rtc.offer", {"call_id": pair.call_id, "sdp": h264})
        assert ack["error"] == {
            "code": "invalid_sdp",
            "message": "the offer has no VP8 video codec",
        }
        ack = await pair.tablet.call("rtc.offer", {"call_id": pair.call_id, "sdp": "x" * 70_000})
        assert ack["error"]["code"] == "invalid_request"  # over the 64 KiB SDP limit
        monitor = await clients.connect("monitor", "S2")  # another facility
        ack = await monitor.call("monitor.watch", {"call_id": pair.call_id, "sdp": sdp})
        assert ack["error"]["code"] == "forbidden"
    finally:
        await peer.close()


async def test_privileged_call_refuses_watch(clients: Clients) -> None:
    pair = await accepted(clients, "R1", "FATTY")
    monitor = await clients.connect("monitor", "S1")
    watcher = MonitorPeer()
    try:
        with pytest.raises(AckError) as err:
            await watch_call(monitor, pair.call_id, watcher)
        assert err.value.code == "privileged"
    finally:
        await watcher.close()


async def test_lost_media_ends_the_call(clients_on: ClientsFactory) -> None:
    pool = await clients_on(media_timeout_s=1.5)
    pair = await accepted(pool)
    async with media_between(pair) as media:
        media.tablet.stop_sending()
        ended = await pair.family.next("call.ended", timeout=10)
        assert ended["reason"] == "connection_lost"
        assert ended["charged_cents"] == 0  # connected for under 10 s: free
        assert (await pair.tablet.next("call.ended"))["reason"] == "connection_lost"
