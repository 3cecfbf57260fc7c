"""The webhook outbox: durable, signed, retried with backoff, every event delivered once by id."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from billing_hooks import BillingEvent, HookBus, MemoryHook, WebhookHook
from billing_hooks.outbox import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from core.embedded_redis import _free_port
from tests.waiting import eventually

SECRET = b"webhook-secret-for-tests"
FAST: dict[str, Any] = {
    "interval_s": 0.02,
    "base_backoff_s": 0.05,
    "max_backoff_s": 0.2,
    "timeout_s": 2.0,
}


@dataclass
class Receiver:
    """A billing system on 127.0.0.1 that can be down, answer 503, or reject some events."""

    port: int
    fail_first: int = 0
    reject_ids: set[str] = field(default_factory=set)
    accepted: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, dict[str, object]] = field(default_factory=dict)
    attempts: int = 0
    bad_signatures: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        if not verify_signature(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.Response(status=401)
        event_id = request.headers[EVENT_ID_HEADER]
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        if event_id in self.reject_ids:
            return web.Response(status=400)
        self.accepted[event_id] += 1
        self.bodies[event_id] = json.loads(body)
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(_free_port())
    yield r
    await r.down()


async def test_down_then_503_then_up_delivers_every_event_once(
    redis: Redis, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="billing_hooks.outbox")
    hook = WebhookHook(receiver.url, SECRET, redis, **FAST)
    memory = MemoryHook()
    bus = HookBus([hook, memory])
    hook.start()
    try:
        started = time.monotonic()
        for i in range(30):
            await bus.emit("call.settled", {"call_id": f"c{i}", "charged_cents": i})
        assert time.monotonic() - started < 1.0  # publishing never waits for the receiver
        await bus.emit("deposit", {"n": 1}, id="deposit:F1:k")
        await bus.emit("deposit", {"n": 1}, id="deposit:F1:k")  # a retried operation

        def refused_twice() -> bool:  # receiver not even listening: refused, backed off, retried
            return sum("not delivered" in r.getMessage() for r in caplog.records) >= 2

        await eventually(refused_twice, "two refused deliveries")
        assert await hook.outbox.length() == 31  # nothing lost while the receiver is down
        receiver.fail_first = 5  # then up, but 503 for a while
        await receiver.up()

        async def drained() -> bool:
            return await hook.outbox.length() == 0

        await eventually(drained)
    finally:
        await hook.stop()
    sent = {e.id for e in memory.events}
    assert set(receiver.accepted) == sent and len(sent) == 31
    assert all(n == 1 for n in receiver.accepted.values())
    assert receiver.bad_signatures == 0 and receiver.attempts >= 31 + 5
    body = receiver.bodies["deposit:F1:k"]
    assert body["type"] == "deposit" and body["data"] == {"n": 1} and body["id"] == "deposit:F1:k"
    assert BillingEvent.from_json(json.dumps(body)).id == "deposit:F1:k"


async def test_events_survive_a_restart(
    redis: Redis, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="billing_hooks.outbox")
    first = WebhookHook(receiver.url, SECRET, redis, **FAST)
    first.start()
    await first.publish(BillingEvent.new("low_balance", {"balance_cents": 400}, "lb-1"))

    def tried() -> bool:
        return any("event lb-1 not delivered" in r.getMessage() for r in caplog.records)

    await eventually(tried, "a refused delivery of lb-1")
    await first.stop()  # the node goes away with the event undelivered
    await receiver.up()
    second = WebhookHook(receiver.url, SECRET, redis, **FAST)
    second.start()
    try:

        async def delivered() -> bool:
            return receiver.accepted["lb-1"] == 1

        await eventually(delivered)
    finally:
        await second.stop()


async def test_a_rejected_event_is_dead_lettered_and_blocks_nothing(
    redis: Redis, receiver: Receiver
) -> None:
    receiver.reject_ids = {"bad"}
    await receiver.up()
    hook = WebhookHook(receiver.url, SECRET, redis, max_rejections=3, **FAST)
    for event_id in ("a", "bad", "b"):
        await hook.publish(BillingEvent.new("autopay", {"x": event_id}, event_id))
    hook.start()
    try:

        async def drained() -> bool:
            return await hook.outbox.length() == 0

        await eventually(drained)
    finally:
        await hook.stop()
    assert set(receiver.accepted) == {"a", "b"}
    dead: Any = await redis.xrange("billing:outbox:dead")
    assert [fields[b"id"] for _, fields in dead] == [b"bad"]


async def test_a_failing_hook_does_not_fail_the_others() -> None:
    class Broken:
        async def publish(self, event: BillingEvent) -> None:
            raise RuntimeError("sink down")

    memory = MemoryHook()
    await HookBus([Broken(), memory]).emit("call.warning", {"call_id": "c1", "remaining_s": 60})
    assert [e.type for e in memory.events] == ["call.warning"]
    with pytest.raises(ValueError):
        BillingEvent.new("nonsense", {})  # type: ignore[arg-type]
