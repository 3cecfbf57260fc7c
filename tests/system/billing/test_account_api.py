"""The family account HTTP API over a real aiohttp server and the real Redis fixture."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from billing_hooks import Biller, FakeProcessor, HookBus, Ledger, MemoryHook, add_account_routes
from billing_hooks.metering.biller import CallCharge
from core.directory import Directory
from core.domain import SeedFile
from core.tokens import Tokens

API = "/api/v1/account"


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    tokens: Tokens
    ledger: Ledger
    biller: Biller
    directory: Directory
    events: MemoryHook
    processor: FakeProcessor

    def auth(self, family: str = "F1", role: str = "family") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(role, family)}"}

    async def call(
        self, method: str, path: str, body: Any = None, family: str = "F1", **kw: Any
    ) -> tuple[int, Any]:
        headers = {**self.auth(family), **kw.pop("headers", {})}
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
        resp = await self.client.request(method, API + path, data=data, headers=headers, **kw)
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def account_api(redis: Redis, tokens: Tokens) -> AsyncIterator[Api]:
    """The family account API on its own aiohttp app, with the fake processor."""
    ledger, directory, events, processor = (
        Ledger(redis), Directory(redis), MemoryHook(), FakeProcessor()
    )  # fmt: skip
    biller = Biller(redis, ledger, HookBus([events]), processor=processor)
    app = web.Application()
    add_account_routes(
        app, redis=redis, ledger=ledger, directory=directory, tokens=tokens, biller=biller
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    yield Api(client, tokens, ledger, biller, directory, events, processor)
    await client.close()


@pytest.fixture
async def api(redis: Redis, seeded: SeedFile, tokens: Tokens) -> AsyncIterator[Api]:
    async with account_api(redis, tokens) as running:
        yield running


def assert_error(status: int, body: Any, expected: int, code: str | None = None) -> None:
    assert status == expected, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


async def test_account(api: Api) -> None:
    status, body = await api.call("GET", "")
    assert status == 200
    assert body["family_id"] == "F1" and body["balance_cents"] == 1000
    assert body["name"] == "Family F1"
    assert body["allow_video_calls"] is True
    assert body["autopay"] == {"enabled": False, "amount_cents": None}


async def test_auth(api: Api) -> None:
    resp = await api.client.get(API)
    assert_error(resp.status, await resp.json(), 401, "unauthorized")
    resp = await api.client.get(API, headers={"Authorization": "Bearer forged.token.here"})
    assert_error(resp.status, await resp.json(), 401, "unauthorized")
    other = Tokens(b"another-secret-of-32-bytes-000000").issue("family", "F1")
    resp = await api.client.get(API, headers={"Authorization": f"Bearer {other}"})
    assert_error(resp.status, await resp.json(), 401, "unauthorized")
    for role in ("tablet", "monitor", "investigator", "admin"):
        resp = await api.client.post(f"{API}/deposits", json={"amount_cents": 500},
                                     headers=api.auth("F1", role))  # fmt: skip
        assert_error(resp.status, await resp.json(), 403, "forbidden")
    assert_error(*await api.call("GET", "", family="NOBODY"), 404, "not_found")
    assert (await api.ledger.balance("F1")).balance_cents == 1000


async def test_deposit(api: Api) -> None:
    status, body = await api.call("POST", "/deposits", {"amount_cents": 500})
    assert status == 200 and body["balance_cents"] == 1500
    assert body["deposit"]["kind"] == "deposit" and body["deposit"]["amount_cents"] == 500
    (event,) = api.events.of("deposit")
    assert event.data["amount_cents"] == 500 and event.data["family_id"] == "F1"
    for edge in (200, 10_000):
        assert (await api.call("POST", "/deposits", {"amount_cents": edge}))[0] == 200


@pytest.mark.parametrize(
    "body", [{"amount_cents": 199}, {"amount_cents": 10_001}, {"amount_cents": "500"},
             {"amount_cents": 500.0}, {"amount_cents": True}, {"amount_cents": None}, {},
             {"amount_cents": 500, "extra": 1}, [500], "500"],
)  # fmt: skip
async def test_bad_deposits_are_422_and_change_nothing(api: Api, body: Any) -> None:
    status, reply = await api.call("POST", "/deposits", json.dumps(body))
    assert_error(status, reply, 422)
    assert (await api.ledger.balance("F1")).balance_cents == 1000
    assert api.processor.payments == {}


async def test_bad_json_is_400(api: Api) -> None:
    for raw in ("{", "", "not json", b"\xff\xfe"):
        assert_error(*await api.call("POST", "/deposits", raw), 400, "invalid_json")
    big = json.dumps({"amount_cents": 500, "pad": "x" * 20_000})
    assert_error(*await api.call("POST", "/deposits", big), 400)


async def test_deposit_idempotency_key(api: Api) -> None:
    headers = {"Idempotency-Key": "phone-123"}
    first = await api.call("POST", "/deposits", {"amount_cents": 700}, headers=headers)
    again = await api.call("POST", "/deposits", {"amount_cents": 700}, headers=headers)
    assert first == again and first[0] == 200
    assert (await api.ledger.balance("F1")).balance_cents == 1700
    conflict = await api.call("POST", "/deposits", {"amount_cents": 900}, headers=headers)
    assert_error(*conflict, 409, "idempotency_conflict")
    bad = await api.call(
        "POST", "/deposits", {"amount_cents": 900}, headers={"Idempotency-Key": "a b"}
    )
    assert_error(*bad, 400)


async def test_declined_deposit(api: Api) -> None:
    api.processor.fail_with = "card_declined"
    assert_error(*await api.call("POST", "/deposits", {"amount_cents": 500}), 409, "payment_failed")
    assert (await api.ledger.balance("F1")).balance_cents == 1000


async def test_statement_and_calls(api: Api) -> None:
    await api.call("POST", "/deposits", {"amount_cents": 500})
    await api.biller.authorize("call-1", "F1", 16, 1800)
    await api.biller.settle(
        CallCharge("call-1", "F1", 90, "hangup", 16, facility_id="SQ", started_at=5.0)
    )
    status, body = await api.call("GET", "/statement")
    assert status == 200 and body["balance_cents"] == 1500 - 32
    rows = [
        (e["kind"], e["amount_cents"], e["balance_cents"], e["held_cents"]) for e in body["entries"]
    ]
    assert rows == [
        ("deposit", 1000, 1000, 0),
        ("deposit", 500, 1500, 0),
        ("hold", 480, 1500, 480),
        ("charge", 32, 1468, 448),
        ("release", 448, 1468, 0),
    ]
    assert body["entries"][3]["call_id"] == "call-1"
    status, body = await api.call("GET", "/statement?limit=2")
    assert [e["kind"] for e in body["entries"]] == ["charge", "release"]
    assert_error(*await api.call("GET", "/statement?limit=0"), 422)
    status, body = await api.call("GET", "/calls")
    assert status == 200
    (call,) = body["calls"]
    assert (call["call_id"], call["facility_id"], call["duration_s"], call["charged_cents"]) == (
        "call-1", "SQ", 90, 32,
    )  # fmt: skip
    assert call["started_at"] == 5.0
    assert (await api.call("GET", "/calls", family="F2"))[1] == {"calls": []}


async def test_settings(api: Api) -> None:
    status, body = await api.call(
        "PUT",
        "/settings",
        {"allow_video_calls": False, "autopay": {"enabled": True, "amount_cents": 2500}},
    )
    assert status == 200 and body["allow_video_calls"] is False
    assert body["autopay"] == {"enabled": True, "amount_cents": 2500}
    family = await api.directory.family("F1")
    assert family is not None and family.allow_video_calls is False and family.verified
    status, body = await api.call("PUT", "/settings", {"autopay": {"enabled": False}})
    assert body["autopay"] == {"enabled": False, "amount_cents": 2500}
    assert (await api.ledger.balance("F1")).balance_cents == 1000  # the profile holds no money


@pytest.mark.parametrize(
    "body",
    [
        {"allow_video_calls": "no"},
        {"allow_video_calls": False, "autopay": {"enabled": True, "amount_cents": 550}},
        {"allow_video_calls": False, "autopay": {"enabled": True}},
        {"allow_video_calls": False, "autopay": {"enabled": True, "amount_cents": 10_100}},
        {"allow_video_calls": False, "autopay": {"enabled": True, "amount_cents": 400}},
        {"allow_video_calls": False, "autopay": {"enabled": True, "amount_cents": 500, "x": 1}},
        {"allow_video_calls": False, "balance_cents": 99999},
    ],
)
async def test_bad_settings_change_nothing(api: Api, body: Any) -> None:
    assert_error(*await api.call("PUT", "/settings", body), 422)
    family = await api.directory.family("F1")
    assert family is not None and family.allow_video_calls is True
    assert (await api.call("GET", ""))[1]["autopay"]["enabled"] is False


async def test_blocks(api: Api) -> None:
    status, body = await api.call("POST", "/blocks", {"facility_id": "SQ"})
    assert status == 200 and body["blocks"] == ["SQ"]
    await api.call("POST", "/blocks", {"facility_id": "SQ"})  # idempotent
    status, body = await api.call("POST", "/blocks", {"facility_id": "all"})
    assert body["blocks"] == ["SQ", "all"]
    family = await api.directory.family("F1")
    assert family is not None and family.blocks_facility("CLOSED")
    assert_error(*await api.call("POST", "/blocks", {"facility_id": "NOPE"}), 404, "not_found")
    assert_error(*await api.call("POST", "/blocks", {"facility_id": "a b"}), 422)
    status, body = await api.call("DELETE", "/blocks/SQ")
    assert status == 200 and body["blocks"] == ["all"]
    await api.call("POST", "/blocks", {"facility_id": "CLOSED"})
    status, body = await api.call("DELETE", "/blocks/all")
    assert body["blocks"] == []
    family = await api.directory.family("F1")
    assert family is not None and not family.blocks_facility("SQ")


async def test_close(api: Api) -> None:
    await api.biller.authorize("call-1", "F1", 16, 1800)
    assert_error(*await api.call("POST", "/close"), 409, "call_in_progress")
    await api.biller.settle(CallCharge("call-1", "F1", 30, "hangup", 16))
    await api.call("PUT", "/settings", {"autopay": {"enabled": True, "amount_cents": 500}})
    status, body = await api.call("POST", "/close")
    assert status == 200 and body["refunded_cents"] == 1000 - 16 and body["status"] == "closed"
    assert (await api.call("POST", "/close"))[1]["refunded_cents"] == 1000 - 16  # retry
    assert [p.amount_cents for p in api.processor.succeeded("refund")] == [1000 - 16]
    status, body = await api.call("GET", "")
    assert body["balance_cents"] == 0 and body["status"] == "closed"
    assert body["autopay"]["enabled"] is False
    assert_error(*await api.call("POST", "/deposits", {"amount_cents": 500}), 409, "account_closed")
