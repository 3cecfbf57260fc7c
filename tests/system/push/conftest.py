"""Push tests: real push services on loopback (:mod:`tests.system.push.push_service`), a node allowed
to send only to them, one real SFU worker shared by the package, and (for the browser test) the
web tests' Chromium."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from core.tokens import Tokens
from tests.conftest import (
    Clients,
    Node,
    NodeFactory,
    http_as,
    package_sfu_worker,
    redis_keeping_workers,
)
from tests.seeds import ALWAYS_OPEN
from tests.system.push.push_service import Device, PushService
from tests.system.web.conftest import browser, pages  # noqa: F401  (the browser test's fixtures)
from visitation.seed import apply_seed, parse_seed

CONTACT = "mailto:ops@visitation.test"
FAMILIES = 10

# Facility PF: resident P<i> calls family PF<i> (i < 10), all verified with $10.00 (PF3: $6.00).
PUSH_SEED: dict[str, Any] = {
    "facilities": [
        {
            "id": "PF",
            "name": "Pine Falls",
            "timezone": "UTC",
            "type": "prison",
            "rate_cents_per_minute": 20,
            "max_call_seconds": 600,
            "calling_hours": ALWAYS_OPEN,
        }
    ],
    "residents": [
        {"id": f"P{i}", "facility_id": "PF", "name": f"Paul Pine {i}"} for i in range(FAMILIES)
    ],
    "families": [
        {
            "id": f"PF{i}",
            "name": f"Pine Family {i}",
            "balance_cents": 600 if i == 3 else 1000,  # PF3: a 10-minute call leaves $4.00
            "verified": True,
        }
        for i in range(FAMILIES)
    ],
    "contacts": [
        {"resident_id": f"P{i}", "family_id": f"PF{i}", "status": "approved"}
        for i in range(FAMILIES)
    ],
    "staff": [{"id": "APF", "role": "admin", "facility_ids": ["PF"]}],
}

sfu_worker = package_sfu_worker("push-sfu")


@pytest.fixture
async def redis(redis_url: str, sfu_worker: str) -> AsyncIterator[Redis]:
    """A clean database (the shared worker kept) with ``PUSH_SEED`` (and, through ``seeded``,
    the standard seed)."""
    async with redis_keeping_workers(redis_url) as client:
        await apply_seed(client, parse_seed(json.dumps(PUSH_SEED)))
        yield client


@pytest.fixture
async def push_services() -> AsyncIterator[tuple[PushService, PushService]]:
    """Two push services (two origins): ``fast`` and one a test may make ``slow``."""
    fast, slow = PushService(), PushService()
    await fast.start()
    await slow.start()
    yield fast, slow
    await fast.stop()
    await slow.stop()


@dataclass
class PushWorld:
    node: Node
    tokens: Tokens
    push: PushService
    other: PushService  # a second origin
    clients: Clients

    def http(self, family: str) -> aiohttp.ClientSession:
        return http_as(self.node.url, self.tokens, "family", family)

    async def subscribe(self, family: str, device: Device) -> str:
        async with (
            self.http(family) as http,
            http.post("/api/v1/account/push-subscriptions", json=device.subscription()) as resp,
        ):
            body = await resp.json()
            assert resp.status in (200, 201), body
            return str(body["id"])

    async def subscriptions(self, family: str) -> list[dict[str, Any]]:
        async with (
            self.http(family) as http,
            http.get("/api/v1/account/push-subscriptions") as resp,
        ):
            assert resp.status == 200
            subs: list[dict[str, Any]] = (await resp.json())["subscriptions"]
            return subs


@pytest.fixture
async def world(
    start_node: NodeFactory,
    seeded: object,
    tokens: Tokens,
    push_services: tuple[PushService, PushService],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[PushWorld]:
    fast, slow = push_services
    monkeypatch.setenv("VISITATION_PUSH_ENDPOINTS", f"{fast.prefix},{slow.prefix}")
    monkeypatch.setenv("VISITATION_PUSH_CONTACT", CONTACT)
    node = await start_node(ring_timeout_s=20.0)
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/api/v1/push/key") as resp:
        key = (await resp.json())["vapid_public_key"]
    fast.vapid_public_key = slow.vapid_public_key = key
    clients = Clients(tokens, node.url, node=node)
    yield PushWorld(node, tokens, fast, slow, clients)
    await clients.close_all()
    assert not fast.problems and not slow.problems, fast.problems + slow.problems
