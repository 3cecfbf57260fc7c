"""The sender's own guarantees, with real Redis and a real push service: the endpoint is checked
again at send time, redirects are not followed, answers are cut short; the endpoint policy and
the VAPID key on their own."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from py_vapid import Vapid02
from redis.asyncio import Redis

from core.config import ConfigError
from push.endpoints import DEFAULT_ENDPOINTS, EndpointPolicy, EndpointRefused
from push.notifier import FamilyPush
from push.outbox import PushOutbox
from push.sender import PushSender, SenderLimits
from push.subscriptions import SubscriptionIn, SubscriptionStore
from push.vapid import KEY_ENV, KEY_FILE, VapidSigner, load_vapid, public_key
from tests.system.push.conftest import CONTACT
from tests.system.push.push_service import PushService
from tests.waiting import eventually


@dataclass
class Rig:
    push: FamilyPush
    sender: PushSender
    store: SubscriptionStore
    outbox: PushOutbox


@pytest.fixture
async def rig(redis: Redis, push_services: tuple[PushService, PushService]) -> AsyncIterator[Rig]:
    """A notifier and a sender allowed to send to the first push service only."""
    allowed, _ = push_services
    vapid = Vapid02()
    vapid.generate_keys()
    allowed.vapid_public_key = public_key(vapid)
    store = SubscriptionStore(redis)
    outbox = PushOutbox(redis)
    sender = PushSender(
        outbox,
        store,
        EndpointPolicy([allowed.prefix]),
        VapidSigner(vapid, CONTACT),
        SenderLimits(timeout_s=2.0, max_response_bytes=1024),
    )
    notifier = FamilyPush(redis, subscriptions=store, outbox=outbox)
    sender.start()
    yield Rig(notifier, sender, store, outbox)
    await sender.stop()
    await notifier.stop()


async def test_an_endpoint_outside_the_prefixes_is_refused_at_send_time(
    rig: Rig, push_services: tuple[PushService, PushService]
) -> None:
    _, elsewhere = push_services
    device = elsewhere.device("stored-earlier")  # e.g. allowed before the settings changed
    await rig.store.add("F1", SubscriptionIn.model_validate(device.subscription()))
    rig.push.call_incoming("F1", "c1", {"id": "R", "name": "R"}, {"id": "F", "name": "F"},
                           time.time() + 30)  # fmt: skip

    async def dropped() -> bool:
        return not await rig.store.of("F1") and (await rig.outbox.depth()) == (0, 0)

    await eventually(dropped, "the subscription removed and its message dropped")
    assert device.requests == 0


async def test_redirects_are_not_followed_and_answers_are_cut(
    rig: Rig, push_services: tuple[PushService, PushService]
) -> None:
    allowed, _ = push_services
    target = allowed.device("target")
    mover = allowed.device("mover")
    mover.answer(307)
    mover.location = target.endpoint
    chatty = allowed.device("chatty")
    chatty.reply_bytes = 5 * 1024 * 1024
    await rig.store.add("F1", SubscriptionIn.model_validate(mover.subscription()))
    await rig.store.add("F2", SubscriptionIn.model_validate(chatty.subscription()))
    parties = ({"id": "R", "name": "R"}, {"id": "F", "name": "F"})
    rig.push.call_incoming("F1", "c1", *parties, time.time() + 30)
    rig.push.call_incoming("F2", "c2", *parties, time.time() + 30)
    await allowed.wait_for(chatty, "call.incoming")

    async def settled() -> bool:
        return (await rig.outbox.depth()) == (0, 0)

    await eventually(settled, "both messages handled")
    assert mover.requests == 1 and target.requests == 0
    assert len(await rig.store.of("F1")) == 1  # a 307 is not "gone"
    assert not allowed.problems


def test_endpoint_policy() -> None:
    policy = EndpointPolicy(DEFAULT_ENDPOINTS)
    for ok in (
        "https://fcm.googleapis.com/fcm/send/abc:def",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
        "https://web.push.apple.com/QGuQyavXutnMH",
        "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAD",
        "https://FCM.googleapis.com/fcm/send/x",
    ):
        assert policy.check(ok)
    for bad in (
        "https://fcm.googleapis.com.evil.example/fcm/send/x",
        "https://fcm.googleapis.com@evil.example/x",
        "https://user@fcm.googleapis.com/x",
        "https://fcm.googleapis.com:8443/x",
        "http://fcm.googleapis.com/x",
        "https://evil.notify.windows.com/w/",
        "https://wns2-a.b.notify.windows.com/w/",
        "https://fcm.googleapis.com/x#frag",
        "https://fcm.googleapis.com/a b",
        "https://127.0.0.1/",
        "fcm.googleapis.com/x",
    ):
        with pytest.raises(EndpointRefused):
            policy.check(bad)
    narrow = EndpointPolicy(["http://127.0.0.1:9000/push/"])
    assert narrow.check("http://127.0.0.1:9000/push/abc")
    for bad in ("http://127.0.0.1:9000/pusher", "http://127.0.0.1:9000/push/../admin"):
        with pytest.raises(EndpointRefused):
            narrow.check(bad)
    with pytest.raises(ValueError):
        EndpointPolicy(["ftp://example.org/"])


def test_the_vapid_key_is_made_once_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    first = load_vapid(tmp_path / "data")
    again = load_vapid(tmp_path / "data")
    assert public_key(first) == public_key(again)
    assert stat.S_IMODE(os.stat(tmp_path / "data" / KEY_FILE).st_mode) == 0o600
    monkeypatch.setenv(KEY_ENV, first.private_pem().decode())
    assert public_key(load_vapid(tmp_path / "elsewhere")) == public_key(first)
    monkeypatch.setenv(KEY_ENV, "not a key")
    with pytest.raises(ConfigError):
        load_vapid(tmp_path / "data")


async def test_a_visit_reminder_lives_until_the_visit_starts(
    rig: Rig, push_services: tuple[PushService, PushService]
) -> None:
    allowed, _ = push_services
    phone = allowed.device("phone")
    await rig.store.add("F1", SubscriptionIn.model_validate(phone.subscription()))
    start = time.time() + 900
    rig.push.visit_reminder(
        "F1", "v1", {"id": "R", "name": "Rae"}, {"id": "F", "name": "Fort"}, start,
        "2026-12-08T14:30:00-08:00", which="15min",
    )  # fmt: skip
    [reminder] = await allowed.wait_for(phone, "visit.reminder")
    assert reminder.payload["visit_id"] == "v1" and reminder.payload["start"] == start
    assert reminder.payload["start_local"] == "2026-12-08T14:30:00-08:00"
    assert 890 <= int(reminder.headers["TTL"]) <= 900
    assert reminder.headers["Urgency"] == "normal"
