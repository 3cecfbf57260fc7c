"""SFU worker subprocesses driven through the Redis control channel (no signaling tier).

Real ``python -m visitation.worker`` processes, real aiortc client peer connections over loopback.
Workers heartbeat every 0.2 s with an 0.8 s alive TTL here (defaults: 1 s / 3 s) so that a
killed worker is noticed quickly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiortc.codecs
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCSessionDescription,
)
from redis.asyncio import Redis

from client.peer import PartyPeer as Client
from media.codec_guard import CodecCounters
from media.control import (
    EVENTS_GROUP,
    ControlError,
    ControlTimeout,
    Party,
    SfuControl,
    WorkerEvent,
    WorkerStatus,
)
from media.control_worker import ControlServer, EventPublisher
from media.pool import WorkerPool
from media.redis_keys import ALIVE, EVENTS, WORKER_CALLS, WORKERS
from tests.system.media.peers import BLUE, RED, TrackSink, connected, see_each_other
from tests.waiting import eventually

FAST = ["--heartbeat-s", "0.2", "--alive-ttl-ms", "800"]


class EventLog:
    """Collects ``sfu:events`` through the real consumer-group reader."""

    def __init__(self) -> None:
        self.events: list[WorkerEvent] = []
        self._changed = asyncio.Condition()

    async def handle(self, event: WorkerEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def of(self, type_: str, call_id: str) -> list[WorkerEvent]:
        return [e for e in self.events if e.type == type_ and e.call_id == call_id]

    async def wait(
        self, type_: str, call_id: str, timeout: float = 10.0, count: int = 1
    ) -> WorkerEvent:
        """The first such event, once ``count`` of them have arrived."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.of(type_, call_id)) >= count), timeout
            )
        return self.of(type_, call_id)[0]


@pytest.fixture
async def control(redis: Redis) -> SfuControl:
    return SfuControl(redis, timeout_s=10)


@pytest.fixture
async def events(control: SfuControl) -> AsyncIterator[EventLog]:
    log = EventLog()
    consumer = control.events("test-node", log.handle, block_ms=100)
    await consumer.start()
    try:
        yield log
    finally:
        await consumer.stop()


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(redis_url, log_level="WARNING", extra_args=FAST)
    try:
        yield workers
    finally:
        await workers.stop(timeout_s=5)


@pytest.fixture
async def worker(pool: WorkerPool, redis: Redis) -> str:
    [worker_id] = await pool.start(1)
    await pool.wait_ready(redis)
    return worker_id


async def join(control: SfuControl, call_id: str, party: Party, client: Client) -> None:
    await client.pc.setLocalDescription(await client.pc.createOffer())
    answer = await control.offer(call_id, party, client.pc.localDescription.sdp)
    await client.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def start_call(
    control: SfuControl, call_id: str, media_timeout_s: float
) -> tuple[Client, Client]:
    tablet, family = Client(RED), Client(BLUE)
    await control.open_call(call_id, media_timeout_s=media_timeout_s)
    await asyncio.gather(  # concurrently: the worker serves requests in parallel
        join(control, call_id, "tablet", tablet), join(control, call_id, "family", family)
    )
    return tablet, family


async def close_clients(*pcs: RTCPeerConnection) -> None:
    await asyncio.gather(*(pc.close() for pc in pcs))


async def raises(code: str, call: Awaitable[object]) -> None:
    with pytest.raises(ControlError) as info:
        await call
    assert info.value.code == code, info.value


async def test_call_monitor_and_close_through_worker(
    control: SfuControl, events: EventLog, worker: str
) -> None:
    assert await control.pick_worker() == worker
    tablet, family = await start_call(control, "C1", media_timeout_s=10)
    monitor = RTCPeerConnection(RTCConfiguration())  # aiortc's default policy: balanced
    try:
        await see_each_other(tablet, family, decoded=10)
        connected_event = await events.wait("connected", "C1", 5)
        assert connected_event.worker_id == worker

        # A late monitor: resident pair first, family pair second; keyframes within 1 s.
        for kind in ("audio", "video", "audio", "video"):
            monitor.addTransceiver(kind, direction="recvonly")
        await monitor.setLocalDescription(await monitor.createOffer())
        answer = await control.watch("C1", "S1", monitor.localDescription.sdp)
        await monitor.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        answered_at = time.monotonic()
        sinks = [TrackSink(t.receiver.track) for t in monitor.getTransceivers()]
        resident_video, family_video = sinks[1], sinks[3]
        await asyncio.wait_for(
            asyncio.gather(resident_video.first_decoded.wait(), family_video.first_decoded.wait()),
            3,
        )
        for sink in (resident_video, family_video):
            assert sink.first_decoded_at is not None
            assert sink.first_decoded_at - answered_at < 1.0
        assert resident_video.main_colour == "red"
        assert family_video.main_colour == "blue"
        await asyncio.wait_for(asyncio.gather(sinks[0].wait_for(5), sinks[2].wait_for(5)), 3)
        await connected(monitor)

        stats = await control.stats(worker)
        room = stats["rooms"]["C1"]
        assert stats["calls"] == 1 and room["connected"] and room["watchers"] == ["S1"]
        assert room["forwarded"] > 0 and room["parties"]["tablet"]["frames"]["video"] > 0
        # Nothing was decoded or encoded inside the worker during the whole call.
        assert stats["codec_guard"] is True
        assert stats["compiled_send"] is True  # built here: the forwarding above ran compiled
        assert stats["transcoders"] == 0 and stats["codecs"] == {}

        # Privileged calls are never monitorable; bad input gets a clear error code.
        await control.open_call("C2", privileged=True)
        await raises("privileged", control.watch("C2", "S1", monitor.localDescription.sdp))
        await raises("invalid_sdp", control.offer("C2", "tablet", "v=0 garbage"))
        await raises("invalid_sdp", control.offer("C2", "family", monitor.localDescription.sdp))
        await raises("invalid_state", control.open_call("C2", privileged=False, worker_id=worker))
        await raises("not_found", control.offer("nope", "tablet", "v=0"))
        unknown = {"call_id": "nope", "watcher_id": "S1"}
        await raises("not_found", control.request(worker, "unwatch", unknown))
        await raises("invalid_request", control.request(worker, "offer", {"call_id": "C2"}))
        await raises("invalid_request", control.request(worker, "reboot", {}))

        await control.unwatch("C1", "S1")
        assert (await control.stats(worker))["rooms"]["C1"]["watchers"] == []
        await control.close_call("C1")
        await control.close_call("C2")
        await control.close_call("C1")  # idempotent
        closed = await asyncio.gather(events.wait("closed", "C1"), events.wait("closed", "C2"))
        assert [e.reason for e in closed] == ["close_call", "close_call"]
        stats = await control.stats(worker)
        assert stats["calls"] == 0 and stats["rooms"] == {} and stats["transcoders"] == 0

        async def freed() -> bool:  # the registry follows at the next heartbeat
            return (await control.live_workers())[worker].calls == 0

        await eventually(freed, within_s=2)
        await raises("not_found", control.worker_of("C1"))
        assert await control.dead_workers() == {}
    finally:
        await close_clients(monitor, tablet.pc, family.pc)


async def test_media_lost_when_one_party_stops_sending(
    control: SfuControl, events: EventLog, worker: str
) -> None:
    tablet, family = await start_call(control, "L1", media_timeout_s=1.5)
    try:
        await events.wait("connected", "L1", 10)
        family.source.stop()  # the family's app freezes: no more RTP from it
        stopped_at = time.monotonic()
        lost = await events.wait("media_lost", "L1", 5)
        assert lost.party == "family" and lost.worker_id == worker
        assert time.monotonic() - stopped_at >= 1.0
        assert [e.party for e in events.of("media_lost", "L1")] == ["family"]
        # Repeated while it lasts, so one event lost on the way cannot keep a dead call up.
        await events.wait("media_lost", "L1", 5, count=2)
        assert {e.party for e in events.of("media_lost", "L1")} == {"family"}
    finally:
        await close_clients(tablet.pc, family.pc)
        await control.close_call("L1")


async def test_killed_worker_is_reported_dead_with_its_calls(
    control: SfuControl, pool: WorkerPool, worker: str, redis: Redis
) -> None:
    await control.open_call("K1")
    await control.open_call("K2")
    assert await control.dead_workers() == {}
    process = pool.processes[worker]
    process.kill()  # SIGKILL: no cleanup at all
    await asyncio.wait_for(process.wait(), 5)

    async def reported() -> bool:
        return worker in await control.dead_workers()

    await eventually(reported)
    assert (await control.dead_workers())[worker] == ["K1", "K2"]
    await raises("worker_unavailable", control.offer("K1", "tablet", "v=0"))
    await raises("no_workers", control.pick_worker())
    assert await control.claim_dead_worker(worker) == ["K1", "K2"]
    assert await control.claim_dead_worker(worker) is None  # exactly once across nodes
    assert await control.dead_workers() == {}
    await raises("not_found", control.worker_of("K1"))


async def test_worker_declared_dead_fences_itself(
    control: SfuControl, events: EventLog, worker: str, redis: Redis
) -> None:
    await control.open_call("F1")
    claimed = None
    while claimed is None:  # as if one heartbeat was missed: the key lapses, a node claims
        await redis.delete(ALIVE(worker))
        claimed = await asyncio.wait_for(control.claim_dead_worker(worker), 1)
    assert claimed == ["F1"]
    closed = await events.wait("closed", "F1", 3)  # the next heartbeat notices and closes
    assert closed.reason == "fenced"
    assert (await control.stats(worker))["calls"] == 0


async def test_sigterm_closes_rooms_and_deregisters(
    control: SfuControl, events: EventLog, pool: WorkerPool, worker: str
) -> None:
    await control.open_call("T1")
    codes = await pool.stop(timeout_s=5)
    assert codes == {worker: 0}
    assert (await events.wait("closed", "T1", 5)).reason == "shutdown"
    assert await control.dead_workers() == {}
    assert await control.live_workers() == {}


async def test_pick_worker_prefers_fewest_calls(control: SfuControl, redis: Redis) -> None:
    await raises("no_workers", control.pick_worker())
    for worker_id, calls in (("a", 3), ("b", 1), ("c", 2)):
        status = WorkerStatus(calls=calls, load=0.1, pid=1, started_at=0)
        await redis.set(ALIVE(worker_id), status.model_dump_json(), px=5000)
        await redis.sadd(WORKERS(), worker_id)
        if worker_id != "a":  # "a" heartbeated 3 calls but has just closed them all
            await redis.sadd(WORKER_CALLS(worker_id), *[f"{worker_id}{n}" for n in range(calls)])
    await redis.sadd(WORKERS(), "gone")  # registered, alive key expired
    assert sorted(await control.live_workers()) == ["a", "b", "c"]
    assert await control.pick_worker() == "a"  # counted from sfu:calls:{w}, not the heartbeat
    assert await control.dead_workers() == {"gone": []}


async def test_requests_are_served_concurrently_and_time_out(
    control: SfuControl, redis: Redis
) -> None:
    gate = asyncio.Event()
    slow_started = asyncio.Event()
    abandoned = asyncio.Event()

    async def handler(op: str, args: dict[str, object]) -> dict[str, object]:
        if op == "slow":
            slow_started.set()
            await asyncio.wait_for(gate.wait(), 5)  # only the "fast" request opens it
        elif op == "fast":
            gate.set()
        elif op == "stuck":
            try:
                await asyncio.Event().wait()  # never answers by itself
            except asyncio.CancelledError:
                abandoned.set()  # what Room.offer does here: close the half-made connection
                raise
        else:
            raise ControlError("not_found", f"no {op}")
        return {"op": op}

    server = ControlServer(redis, "w1", handler, poll_s=0.2)
    await redis.set(ALIVE("w1"), "{}", px=10_000)
    await redis.set(ALIVE("ghost"), "{}", px=10_000)  # "alive" but never answers
    server.start()
    try:
        slow = asyncio.create_task(control.request("w1", "slow", {}))
        await asyncio.wait_for(slow_started.wait(), 5)  # the slow one is being served
        assert await control.request("w1", "fast", {}, timeout_s=3) == {"op": "fast"}
        assert await asyncio.wait_for(slow, 3) == {"op": "slow"}
        await raises("not_found", control.request("w1", "other", {}))
        with pytest.raises(ControlTimeout):
            await control.request("ghost", "stats", {}, timeout_s=0.3)
        await raises("worker_unavailable", control.request("nobody", "stats", {}))
        # Past its deadline the worker abandons the work instead of finishing it for nobody.
        with pytest.raises(ControlTimeout):
            await control.request("w1", "stuck", {}, timeout_s=0.3)
        await asyncio.wait_for(abandoned.wait(), 3)
    finally:
        await server.stop()


async def test_event_consumers_share_the_stream_and_retry_failures(
    control: SfuControl, redis: Redis
) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}
    failed: list[str] = []
    all_done = asyncio.Event()

    def handler(name: str) -> Callable[[WorkerEvent], Awaitable[None]]:
        async def handle(event: WorkerEvent) -> None:
            if event.call_id == "X3" and not failed:
                failed.append(name)
                raise RuntimeError("signaling hiccup")
            seen[name].append(event.call_id)
            if sum(map(len, seen.values())) == 6:
                all_done.set()

        return handle

    consumers = [
        control.events(name, handler(name), block_ms=50, claim_idle_ms=200) for name in seen
    ]
    publisher = EventPublisher(redis)
    for consumer in consumers:
        await consumer.start()
    publisher.start()
    try:
        for n in range(6):
            publisher.emit(WorkerEvent(type="closed", call_id=f"X{n}", worker_id="w"))
        await asyncio.wait_for(all_done.wait(), 5)
        assert sorted(seen["a"] + seen["b"]) == [f"X{n}" for n in range(6)]  # each once
        assert failed  # X3 failed once, stayed pending, then was claimed and handled
        await eventually(lambda: _no_pending(redis), within_s=2)
    finally:
        await publisher.stop()
        for consumer in consumers:
            await consumer.stop()


async def _no_pending(redis: Redis) -> bool:
    summary = await redis.xpending(EVENTS(), EVENTS_GROUP)
    return int(summary["pending"]) == 0


def test_codec_counters_see_aiortc_codecs() -> None:
    """Positive control for the worker's no-transcode guard (``transcoders`` in stats)."""
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    counters = CodecCounters().install()
    try:
        assert counters.total == 0
        aiortc.codecs.get_decoder(vp8)
        assert counters.calls == {"aiortc.codecs.get_decoder": 1, "Vp8Decoder.__init__": 1}
    finally:
        counters.uninstall()
    aiortc.codecs.get_decoder(vp8)
    assert counters.total == 2 and not counters.installed


async def test_worker_admits_up_to_its_limit_then_answers_capacity(
    redis_url: str, redis: Redis, control: SfuControl
) -> None:
    workers = WorkerPool(redis_url, log_level="WARNING", extra_args=[*FAST, "--max-calls", "1"])
    try:
        [worker] = await workers.start(1)
        await workers.wait_ready(redis)
        assert (await control.live_workers())[worker].max_calls == 1
        await control.open_call("A1", worker_id=worker)
        await raises("capacity", control.open_call("A2", worker_id=worker))  # the worker says no
        await raises("capacity", control.pick_worker())  # and nobody picks it any more
        assert (await control.stats(worker))["calls"] == 1  # nothing half-made for A2
        await control.close_call("A1")
        assert await control.pick_worker() == worker
    finally:
        await workers.stop(timeout_s=5)
