"""Money writes and the replicas that must confirm them (:mod:`billing_hooks.durability`), on
the suite's single Redis: with no replica required nothing is waited for; requiring one that
does not exist (``VISITATION_REDIS_MIN_REPLICAS=1``) shows what a failover's aftermath does:
the write is made, never acknowledged, and the same operation retried later applies once.
(tests/system/test_redis_sentinel.py does the same with a real replica and Sentinels.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from billing_hooks.durability import BARRIER_KEY, NotDurable, run_durably
from billing_hooks.hooks import BillingEvent, HookBus, MemoryHook, WebhookHook
from billing_hooks.money.ledger import Ledger, LedgerError
from billing_hooks.outbox import Outbox
from billing_hooks.redis_keys import NOTIFY_PREVIEW
from core.redis_pool import Replication, connect, replication


@pytest.fixture
async def strict(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Redis]:
    """A client that wants one replica (there is none) and gives up waiting after 50 ms."""
    monkeypatch.setenv("VISITATION_REDIS_MIN_REPLICAS", "1")
    monkeypatch.setenv("VISITATION_REDIS_WAIT_TIMEOUT", "0.05")
    client = connect(redis_url)
    yield client
    await client.aclose()


async def test_a_single_redis_waits_for_nothing(redis: Redis, redis_url: str) -> None:
    client = connect(redis_url)
    try:
        assert replication(client) == Replication(0)

        async def queue(pipe: Pipeline) -> None:
            pipe.set(NOTIFY_PREVIEW("F1"), "full")  # any write of billing's

        done = await run_durably(client, queue)
        assert done.confirmed and done.results == [True]
        assert not await client.exists(BARRIER_KEY)
        entry = await Ledger(client).deposit("F1", 500, "deposit:a")
        assert entry.balance_cents == 500
    finally:
        await client.aclose()


async def test_unconfirmed_money_is_not_acknowledged(strict: Redis, redis: Redis) -> None:
    ledger = Ledger(strict)
    with pytest.raises(NotDurable):
        await ledger.deposit("F1", 500, "deposit:a")
    assert await Ledger(redis).has_ref("F1", "deposit:a"), "made on the master all the same"
    with pytest.raises(NotDurable):  # the retry finds it, and cannot confirm it either
        await ledger.deposit("F1", 500, "deposit:a")
    with pytest.raises(NotDurable):
        await ledger.find("F1", "deposit:a", confirmed=True)
    assert await ledger.find("F1", "deposit:missing", confirmed=True) is None
    with pytest.raises(LedgerError, match="insufficient_funds"):  # a refusal is a refusal
        await ledger.charge("F1", 10_000, "charge:x")
    assert (await Ledger(redis).balance("F1")).balance_cents == 500, "applied once"


async def test_an_unconfirmed_event_fails_the_emitter_after_every_hook(strict: Redis) -> None:
    webhook = WebhookHook("http://127.0.0.1:9/never", b"k" * 32, strict)
    memory = MemoryHook()
    bus = HookBus([webhook, memory])
    event = BillingEvent.new("deposit", {"family_id": "F1"}, "deposit:F1:a")
    with pytest.raises(NotDurable):
        await bus.publish(event)
    assert memory.events == [event], "the other hooks still ran"
    assert await Outbox(strict).length() == 1  # appended; a retry is deduplicated
    with pytest.raises(NotDurable):
        await bus.publish(event)
    assert await Outbox(strict).length() == 1
