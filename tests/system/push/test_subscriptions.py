"""The push-subscription routes: what is kept, and bad input refused whole (422, nothing stored)."""

from __future__ import annotations

import base64
import os
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.conftest import http_as
from tests.system.push.conftest import PushWorld

PATH = "/api/v1/account/push-subscriptions"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def off_curve_point() -> str:
    """65 bytes that look like an uncompressed point (0x04 first) but are not on P-256."""
    return b64url(b"\x04" + b"\x01" * 64)


async def post(world: PushWorld, body: Any, family: str = "PF0") -> tuple[int, dict[str, Any]]:
    async with world.http(family) as http, http.post(PATH, json=body) as resp:
        return resp.status, await resp.json()


async def test_bad_subscriptions_are_refused_and_nothing_is_stored(
    world: PushWorld, redis: Redis
) -> None:
    good = world.push.device("phone").subscription()
    port = world.push.port
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "endpoint": "https://evil.example/push/x"}, "not a push service"),
        ({**good, "endpoint": f"http://127.0.0.1:{port}@evil.example/push/x"}, "endpoint"),
        ({**good, "endpoint": f"http://127.0.0.1:{port + 1}/push/x"}, "not a push service"),
        ({**good, "endpoint": f"http://127.0.0.1:{port}/admin/x"}, "not a push service"),
        ({**good, "endpoint": f"{world.push.prefix}../../admin"}, "not a push service"),
        ({**good, "endpoint": f"{world.push.prefix}%2e%2e/admin"}, "not a push service"),
        ({**good, "endpoint": "file:///etc/passwd"}, "endpoint"),
        ({**good, "endpoint": world.push.prefix + "x" * 2000}, "endpoint"),
        ({**good, "keys": {**good["keys"], "p256dh": off_curve_point()}}, "P-256"),
        ({**good, "keys": {**good["keys"], "p256dh": b64url(os.urandom(33))}}, "P-256"),
        ({**good, "keys": {**good["keys"], "p256dh": "not base64!"}}, "base64url"),
        ({**good, "keys": {**good["keys"], "auth": b64url(os.urandom(15))}}, "16-byte"),
        ({**good, "keys": {**good["keys"], "auth": b64url(os.urandom(17))}}, "16-byte"),
        ({"endpoint": good["endpoint"]}, "keys"),
        ({**good, "padding": "x" * 5000}, "over 4096 bytes"),
    ]
    for body, why in cases:
        status, answer = await post(world, body)
        assert status == 422, (body, answer)
        assert answer["error"]["code"] == "invalid_request"
        assert why in answer["error"]["message"], (why, answer)
    async with (
        world.http("PF0") as http,
        http.post(PATH, data=b"{not json", headers={"Content-Type": "application/json"}) as resp,
    ):
        assert resp.status == 400
    assert await world.subscriptions("PF0") == []
    assert not [key async for key in redis.scan_iter("push:subs:*")]
    assert not [key async for key in redis.scan_iter("push:endpoint:*")]


async def test_same_endpoint_keeps_its_id_and_a_sixth_replaces_the_oldest(
    world: PushWorld,
) -> None:
    devices = [world.push.device(f"d{i}") for i in range(6)]
    status, first = await post(world, devices[0].subscription())
    assert status == 201
    status, again = await post(world, devices[0].subscription())
    assert (status, again["id"]) == (200, first["id"])
    ids = [first["id"]]
    for device in devices[1:5]:
        status, body = await post(world, device.subscription())
        assert status == 201
        ids.append(body["id"])
    status, sixth = await post(world, devices[5].subscription())
    assert status == 201 and sixth["replaced"] == ids[0]
    listed = await world.subscriptions("PF0")
    assert [s["id"] for s in listed] == [*ids[1:], sixth["id"]]
    assert [s["endpoint"] for s in listed] == [d.endpoint for d in devices[1:]]
    assert all(isinstance(s["created_at"], float) for s in listed)
    # The replaced endpoint is new again; the same endpoint from another family moves there.
    status, moved = await post(world, devices[1].subscription(), family="PF1")
    assert status == 201
    assert [s["id"] for s in await world.subscriptions("PF1")] == [moved["id"]]
    assert ids[1] not in [s["id"] for s in await world.subscriptions("PF0")]


async def test_delete_only_your_own(world: PushWorld) -> None:
    status, mine = await post(world, world.push.device("a").subscription())
    assert status == 201
    async with world.http("PF1") as http, http.delete(f"{PATH}/{mine['id']}") as resp:
        assert resp.status == 404
    async with world.http("PF0") as http, http.delete(f"{PATH}/../../etc") as resp:
        assert resp.status == 404
    assert len(await world.subscriptions("PF0")) == 1
    async with world.http("PF0") as http, http.delete(f"{PATH}/{mine['id']}") as resp:
        assert resp.status == 200
    assert await world.subscriptions("PF0") == []


async def test_roles_and_the_public_key(world: PushWorld) -> None:
    async with (
        http_as(world.node.url, world.tokens, "tablet", "P0") as http,
        http.get(PATH) as resp,
    ):
        assert resp.status == 403
    async with aiohttp.ClientSession() as http, http.post(world.node.url + PATH, json={}) as resp:
        assert resp.status == 401
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{world.node.url}/api/v1/push/key") as resp:
            key = (await resp.json())["vapid_public_key"]
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(raw) == 65 and raw[0] == 4
