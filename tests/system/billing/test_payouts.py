"""Close-out refund payouts: a close in flight never loses its pending payout."""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from billing_hooks import FakeProcessor, Ledger
from billing_hooks.money.funding import PAYOUT_GRACE_S, PAYOUT_PENDING, Funding


async def test_a_young_payout_mark_survives_a_resume_before_its_close(redis: Redis) -> None:
    ledger = Ledger(redis)
    funding = Funding(redis, ledger, FakeProcessor())
    await ledger.deposit("F9", 700, "opening")
    # A close has marked its payout but not yet written the ledger close (another node resumes).
    fresh = json.dumps({"family_id": "F9", "at": time.time()})
    await redis.hset(PAYOUT_PENDING, "close:F9", fresh)
    await funding.resume_payouts()
    assert await redis.hexists(PAYOUT_PENDING, "close:F9")
    # A mark whose close never happened is forgotten once it is older than the grace period.
    stale = json.dumps({"family_id": "F9", "at": time.time() - PAYOUT_GRACE_S - 1})
    await redis.hset(PAYOUT_PENDING, "close:F9", stale)
    await funding.resume_payouts()
    assert not await redis.hexists(PAYOUT_PENDING, "close:F9")


async def test_close_pays_the_refund_out(redis: Redis) -> None:
    ledger = Ledger(redis)
    processor = FakeProcessor()
    funding = Funding(redis, ledger, processor)
    await ledger.deposit("F8", 1234, "opening")
    entry = await funding.close("F8")
    assert entry.amount_cents == 1234
    assert [p.amount_cents for p in processor.succeeded("refund")] == [1234]
    assert not await redis.hexists(PAYOUT_PENDING, "close:F8")
