"""Finding 4: an expired token's socket is told ``session.expired`` and closed; ``visitation
revoke`` ends every token of a subject issued before it, and its open sockets on every node
within 2 s."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from client.session import ProtocolClient, RefusedError
from core.domain import SeedFile
from core.tokens import Tokens
from tests.conftest import NodeFactory, http_as
from tests.system.test_seed import run_cli
from tests.waiting import eventually


async def closed_within(client: ProtocolClient, seconds: float) -> None:
    await eventually(
        lambda: not client.sio.connected, f"{client.name} disconnected", within_s=seconds
    )


async def test_an_expired_token_ends_its_socket(
    start_node: NodeFactory, seeded: SeedFile, tokens: Tokens
) -> None:
    node = await start_node()
    client = ProtocolClient(node.url, tokens.issue("tablet", "R1", ttl_s=2), "R1")
    await client.connect()
    try:
        issued = time.time()
        assert await client.next("session.expired", timeout=6) == {}
        assert time.time() - issued < 2 + 2  # at expiry, give or take the sweep
        await closed_within(client, 2)
        with pytest.raises(RefusedError, match="expired"):
            await ProtocolClient(node.url, client.token).connect()
    finally:
        await client.close()


async def test_revoke_ends_the_subjects_sockets_on_every_node(
    start_node: NodeFactory, seeded: SeedFile, tokens: Tokens, redis_url: str, tmp_path: Path
) -> None:
    node_a, node_b = await start_node(), await start_node()
    old = tokens.issue("family", "F1")
    on_a = await ProtocolClient(node_a.url, old, "F1@A").connect()
    on_b = await ProtocolClient(node_b.url, old, "F1@B").connect()
    bystander = await ProtocolClient(node_a.url, tokens.issue("family", "F2"), "F2").connect()
    try:
        result = run_cli("revoke", "family", "F1", "--redis-url", redis_url)
        assert result.returncode == 0, result.stderr
        revoked = time.monotonic()
        for client in (on_a, on_b):
            assert await client.next("session.expired", timeout=2) == {}
            await closed_within(client, 2.5 - (time.monotonic() - revoked))
        assert bystander.sio.connected
        assert (await bystander.request("session.info"))["id"] == "F2"
        # The old token is refused everywhere; one issued after the revocation works.
        with pytest.raises(RefusedError, match="revoked"):
            await ProtocolClient(node_b.url, old).connect()
        async with (
            http_as(node_a.url, tokens, "family", "F1") as fresh,
            fresh.get("/api/v1/account", headers={"Authorization": f"Bearer {old}"}) as response,
        ):
            assert response.status == 401
            assert (await response.json())["error"]["message"] == "token revoked"
            async with fresh.get("/api/v1/account") as ok:
                assert ok.status == 200
        async with ProtocolClient(node_b.url, tokens.issue("family", "F1")) as again:
            assert (await again.request("session.info"))["id"] == "F1"
    finally:
        for client in (on_a, on_b, bystander):
            await client.close()


async def test_revoke_refuses_an_unknown_role(tmp_path: Path, redis_url: str) -> None:
    result = run_cli("revoke", "warden", "W1", "--redis-url", redis_url)
    assert result.returncode == 2
