"""Findings 1-3: admins are staff scoped to their facilities; every purpose has its own key;
deposits are never credited without a payment processor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from redis.asyncio import Redis

from billing_hooks import FakeProcessor, ProcessorError, load_processor
from client.session import ProtocolClient, RefusedError
from core.config import ConfigError, Settings
from core.domain import SeedFile
from core.keys import Purpose, derive_key
from core.tokens import TokenError, Tokens
from recorder.manifest import ManifestSigner
from tests.conftest import SECRET, Node, NodeFactory, http_as
from tests.system.security.conftest import state
from tests.system.test_seed import run_cli
from visitation.node import SignalingNode


async def put(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with http.put(path, json=body) as response:
        return response.status, await response.json()


# -- 1. admins --------------------------------------------------------------------------------


async def test_an_admin_outside_its_facilities_changes_nothing(
    node: Node, tokens: Tokens, redis: Redis
) -> None:
    """A2 administers CLOSED only: SQ's rates and SQ's attorney relationship are out of reach."""
    before = await state(redis)
    async with http_as(node.url, tokens, "admin", "A2") as http:
        status, body = await put(http, "/api/v1/admin/facilities/SQ", {"rate_cents_per_minute": 1})
        assert (status, body["error"]["code"]) == (404, "not_found")
        privileged_off = {"status": "approved", "privileged": False}
        status, body = await put(http, "/api/v1/admin/contacts/R1/FATTY", privileged_off)
        assert (status, body["error"]["code"]) == (404, "not_found")
        assert await state(redis) == before
        # Its own facility it does administer.
        status, body = await put(http, "/api/v1/admin/facilities/CLOSED", {"max_call_seconds": 600})
        assert status == 200 and body["max_call_seconds"] == 600
        status, body = await put(http, "/api/v1/admin/contacts/R3/F1", {"status": "denied"})
        assert status == 200 and body["status"] == "denied"


async def test_an_admin_token_for_anyone_is_refused(node: Node, tokens: Tokens) -> None:
    for who in ("ANYONE", "S1", "I1"):  # unknown, a monitor, an investigator
        async with http_as(node.url, tokens, "admin", who) as http:
            status, body = await put(http, "/api/v1/admin/facilities/SQ", {"max_call_seconds": 60})
            assert (status, body["error"]["code"]) == (403, "forbidden")
        with pytest.raises(RefusedError, match="unknown admin"):
            await ProtocolClient(node.url, tokens.issue("admin", who)).connect()


async def test_an_admins_session_is_scoped(node: Node, tokens: Tokens) -> None:
    async with ProtocolClient(node.url, tokens.issue("admin", "A2")) as admin:
        info = await admin.request("session.info")
        assert info["facility_ids"] == ["CLOSED"]


async def test_visitation_token_admin_needs_a_seeded_admin(
    redis: Redis, redis_url: str, seeded: SeedFile, tmp_path: Path
) -> None:
    args = ("--redis-url", redis_url, "--data-dir", str(tmp_path))
    assert run_cli("token", "admin", "A1", *args).returncode == 0
    refused = run_cli("token", "admin", "ANYONE", *args)
    assert refused.returncode == 2 and "admin" in refused.stderr and not refused.stdout
    assert run_cli("token", "admin", "S1", *args).returncode == 2  # a monitor


# -- 2. keys ----------------------------------------------------------------------------------


def test_tokens_and_manifests_use_keys_of_their_own() -> None:
    keys = {purpose: derive_key(SECRET, purpose) for purpose in Purpose}
    assert len(set(keys.values())) == len(keys) and SECRET not in keys.values()
    raw = {"iss": "visitation", "sub": "A1", "role": "admin", "iat": 1, "exp": 2**40}
    for key in (SECRET, keys[Purpose.MANIFESTS], keys[Purpose.TURN]):
        with pytest.raises(TokenError, match="signature"):
            Tokens(SECRET).verify(jwt.encode(raw, key, algorithm="HS256"))
    assert Tokens(SECRET).verify(jwt.encode(raw, keys[Purpose.TOKENS], algorithm="HS256"))
    assert ManifestSigner(SECRET)._key == keys[Purpose.MANIFESTS]


def test_the_cli_and_the_server_sign_alike(tmp_path: Path) -> None:
    result = run_cli("token", "family", "F1", "--data-dir", str(tmp_path))
    assert result.returncode == 0
    assert Tokens(SECRET).verify(result.stdout.strip()).subject == "F1"


def webhook_settings(**env: str) -> Settings:
    return Settings(billing_webhook_url="http://127.0.0.1:9/hook", **env)  # type: ignore[arg-type]


def test_a_webhook_needs_its_own_secret(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="VISITATION_BILLING_WEBHOOK_SECRET"):
        webhook_settings().check(SECRET)
    with pytest.raises(ConfigError, match="differ"):
        webhook_settings(billing_webhook_secret=SECRET.decode()).check(SECRET)
    with pytest.raises(ConfigError):
        SignalingNode(webhook_settings(), redis_url, SECRET)
    webhook_settings(billing_webhook_secret="a-webhook-secret-of-our-own").check(SECRET)


def test_serve_refuses_a_webhook_without_its_secret(tmp_path: Path) -> None:
    env = {"VISITATION_BILLING_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    result = run_cli("serve", "--data-dir", str(tmp_path), "--workers", "0", env=env)
    assert result.returncode == 2
    assert "VISITATION_BILLING_WEBHOOK_SECRET must be set" in result.stderr
    assert "Traceback" not in result.stderr


# -- 3. payments ------------------------------------------------------------------------------


async def test_without_a_processor_deposits_and_autopay_are_refused(
    node: Node, tokens: Tokens, redis: Redis
) -> None:
    before = await state(redis)
    async with http_as(node.url, tokens, "family", "F1") as http:
        async with http.post("/api/v1/account/deposits", json={"amount_cents": 5000}) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "payments_unavailable"
        autopay = {"allow_video_calls": False, "autopay": {"enabled": True, "amount_cents": 2000}}
        async with http.put("/api/v1/account/settings", json=autopay) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "payments_unavailable"
        async with http.get("/api/v1/account") as response:
            account = await response.json()
    assert account["balance_cents"] == 1000 and account["allow_video_calls"] is True
    assert await state(redis) == before


async def test_the_fake_processor_only_when_asked_for(
    start_node: NodeFactory, seeded: SeedFile, tokens: Tokens
) -> None:
    assert load_processor(None) is None
    assert isinstance(load_processor(None, demo=True), FakeProcessor)
    assert isinstance(load_processor("fake"), FakeProcessor)
    for bad in ("stripe", "nosuchmodule:factory", "json:nosuchfactory"):
        with pytest.raises(ProcessorError):
            load_processor(bad)
    node = await start_node(payment_processor="fake")
    async with (
        http_as(node.url, tokens, "family", "F1") as http,
        http.post("/api/v1/account/deposits", json={"amount_cents": 500}) as response,
    ):
        assert response.status == 200 and (await response.json())["balance_cents"] == 1500


def processor_factory() -> FakeProcessor:
    """A ``module:factory`` adapter for the test below."""
    processor = FakeProcessor()
    processor.fail_with = "card_declined"
    return processor


async def test_a_module_factory_processor_is_loaded(
    start_node: NodeFactory, seeded: SeedFile, tokens: Tokens
) -> None:
    spec = f"{__name__}:processor_factory"
    node = await start_node(payment_processor=spec)
    async with (
        http_as(node.url, tokens, "family", "F1") as http,
        http.post("/api/v1/account/deposits", json={"amount_cents": 500}) as response,
    ):
        body = json.loads(await response.text())
        assert response.status == 409 and body["error"]["code"] == "payment_failed"
