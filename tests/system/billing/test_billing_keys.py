"""Billing's keys (billing_hooks/redis_keys.py): in the scheme, clear of core's, and all that a
day of billing writes (calls settled, deposits, AutoPay, an outbox delivering, a close-out)."""

from __future__ import annotations

from redis.asyncio import Redis

from billing_hooks import AutoPaySettings, Biller, FakeProcessor, HookBus, Ledger, MemoryHook
from billing_hooks.api.account_api import NotificationPreview
from billing_hooks.metering.biller import CallCharge
from billing_hooks.money.payments import PaymentMethod
from billing_hooks.money.receipts import PaymentMethods
from billing_hooks.outbox import Outbox
from billing_hooks.redis_keys import KEYS, OUTBOX, outbox_keys
from core import keyspace
from core import redis_keys as core_keys
from core.redis_text import text

EVERY = (*KEYS, *core_keys.KEYS)


def test_billing_keys_follow_the_scheme_beside_cores() -> None:
    assert not keyspace.collisions(EVERY)
    spaces = keyspace.owners_by_space({"billing_hooks": KEYS, "core": core_keys.KEYS})
    assert all(len(owners) == 1 for owners in spaces.values()), spaces
    assert all(key.about for key in KEYS)
    mail = outbox_keys("mail:outbox", "e-mails")
    assert mail.seen("m1") == "mail:outbox:seen:m1" and mail.lease() == "mail:outbox:lease"


async def test_what_billing_writes_is_all_in_its_keys(redis: Redis) -> None:
    ledger = Ledger(redis)
    biller = Biller(redis, ledger, HookBus([MemoryHook()]), processor=FakeProcessor())
    await ledger.deposit("F1", 2000, "opening:F1")
    auth = await biller.authorize("c1", "F1", 10, 600)
    assert auth.hold_cents > 0
    charge = CallCharge("c1", "F1", 125, "hangup", 10, facility_id="FAC", ended_at=86400.0)
    await biller.settle(charge)
    await biller.settle(charge)  # a retry: nothing new
    await biller.set_autopay("F1", AutoPaySettings(True, 1000))
    await biller.deposit("F1", 500, "k1")
    methods = PaymentMethods(redis, clock=lambda: 5.0)
    await methods.put_on_file("F1", PaymentMethod("pm1", "visa", "4242"))
    await methods.used_for("F1", "deposit:k1", PaymentMethod("pm1", "visa", "4242"))
    await NotificationPreview(redis).set("F1", "private")
    outbox = Outbox(redis)
    assert await outbox.append("call.settled:c1", "{}")
    assert await outbox.take_lease("n1", 30.0)
    [first, *_] = await outbox.head(10)
    assert await outbox.rejected(first, 1, "rejected: HTTP 400")  # a dead letter
    await biller.close("F1")
    await biller.drain()
    found = [text(k) async for k in redis.scan_iter(count=1000)]
    assert keyspace.unknown(found, EVERY) == []
    assert OUTBOX.dead() in found and "billing:calls:F1" in found
