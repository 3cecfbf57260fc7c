"""Every role against every Socket.IO event and every HTTP route, listed from the routing tables
themselves (``SocketApi.routes`` and the aiohttp router): a route added tomorrow is covered
the day it is added, and one added without a role guard fails here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis

from client.session import ProtocolClient, RefusedError
from core.http_api import roles_of
from core.tokens import ROLES, Tokens
from tests.conftest import Node
from tests.system.security.conftest import SOCKET_SUBJECTS, SUBJECTS, state

#: Routes anyone may reach: health, metrics, the pages and their files (the family app's
#: service worker and manifest), Socket.IO's handshake; since v1.2 sign-up, its confirmation,
#: sign-in, password reset, and the push services' public key.
PUBLIC = re.compile(
    r"^(/|/healthz|/metrics|/family|/tablet|/monitor|/investigator|/admin|/media-sw\.js"
    r"|/family-sw\.js|/family\.webmanifest"
    r"|/api/v1/(signup|signup/confirm|login|password-reset|password-reset/confirm|push/key))$"
)
PUBLIC_PREFIXES = ("/static", "/socket.io/")
SERVER_EVENTS = {"connect", "disconnect", "*"}


def test_every_role_is_in_the_matrix() -> None:
    assert set(SUBJECTS) == set(ROLES)


@pytest.fixture
async def everyone(node: Node, tokens: Tokens) -> AsyncIterator[dict[str, ProtocolClient]]:
    clients = {
        role: ProtocolClient(node.url, tokens.issue(role, subject), subject)
        for role, subject in SOCKET_SUBJECTS.items()
    }
    for client in clients.values():
        await client.connect()
    yield clients
    for client in clients.values():
        await client.close()


async def test_every_handler_is_a_routed_event(node: Node) -> None:
    """No Socket.IO handler bypasses the role/payload/limits wrapper of ``SocketApi.route``."""
    handlers = set(node.node.sio.handlers.get("/", {}))
    assert handlers - SERVER_EVENTS == set(node.node.sockets.routes)
    assert node.node.sockets.routes  # the table is really there


async def test_socket_events_by_role(node: Node, everyone: dict[str, ProtocolClient]) -> None:
    routes = node.node.sockets.routes
    for event, allowed in sorted(routes.items()):
        assert allowed <= set(ROLES), event
        for role, client in everyone.items():
            ack = await client.call(event, {})
            code = None if ack["ok"] else ack["error"]["code"]
            if role in allowed:
                # Admitted: at most a complaint about the (empty) payload, never the role.
                assert code != "forbidden" or "not allowed for" not in ack["error"]["message"], (
                    event,
                    role,
                    ack,
                )
            else:
                assert code == "forbidden", (event, role, ack)


async def test_a_device_token_is_refused_at_connect(node: Node, tokens: Tokens) -> None:
    """It holds no socket, so no event can be tried with it (it signs residents in over HTTP)."""
    assert set(SUBJECTS) - set(SOCKET_SUBJECTS) == {"device"}
    with pytest.raises(RefusedError, match="unknown device"):
        await ProtocolClient(node.url, tokens.issue("device", SUBJECTS["device"])).connect()


def api_routes(node: Node) -> list[tuple[str, str, frozenset[str] | None]]:
    out = []
    for route in node.node.app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if route.method in ("HEAD", "OPTIONS"):
            continue
        out.append((route.method, canonical, roles_of(route.handler)))
    return out


async def test_every_route_is_guarded_or_public(node: Node) -> None:
    for method, path, roles in api_routes(node):
        public = PUBLIC.match(path) or path.startswith(PUBLIC_PREFIXES)
        if roles is None:
            assert public, f"{method} {path} has no role guard"
        else:
            assert not public and roles <= set(ROLES), (method, path, roles)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "XNONE", path)


async def test_http_routes_by_role(node: Node, tokens: Tokens) -> None:
    guarded = [(m, p, r) for m, p, r in api_routes(node) if r is not None]
    assert len(guarded) >= 15
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for method, path, allowed in guarded:
            assert allowed is not None
            url = concrete(path)
            async with http.request(method, url) as response:
                assert response.status == 401, (method, path)
            bad = {"Authorization": "Bearer " + tokens.issue("family", "F1")[:-4] + "AAAA"}
            async with http.request(method, url, headers=bad) as response:
                assert response.status == 401, (method, path)
            for role, subject in SUBJECTS.items():
                headers = {"Authorization": f"Bearer {tokens.issue(role, subject)}"}
                async with http.request(method, url, headers=headers) as response:
                    # An admitted request may answer a file (a calendar, a PDF statement).
                    json_body = response.content_type == "application/json"
                    body = await response.json() if json_body else None
                    if role in allowed:
                        assert response.status not in (401, 403), (method, path, role, body)
                    else:
                        assert response.status == 403, (method, path, role, body)
                        assert body is not None and body["error"]["code"] == "forbidden"


async def test_a_device_token_reaches_the_tablet_sign_in_only(
    node: Node, tokens: Tokens, redis: Redis
) -> None:
    """Every other route answers a device token 403, with a body or without, changing nothing."""
    routes = [(m, p, r) for m, p, r in api_routes(node) if r is not None]
    assert [(m, p) for m, p, r in routes if "device" in r] == [("POST", "/api/v1/tablet/login")]
    headers = {"Authorization": f"Bearer {tokens.issue('device', SUBJECTS['device'])}"}
    body = {"resident_id": "R1", "pin": "1234", "status": "verified", "amount_cents": 500}
    before = await state(redis)
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for method, path, _ in routes:
            if path == "/api/v1/tablet/login":
                continue
            real = concrete(path.replace("{family_id}", "F1").replace("{resident_id}", "R1"))
            async with http.request(method, real, json=body, headers=headers) as response:
                answer = await response.json()
                assert response.status == 403, (method, path, answer)
                assert answer["error"]["code"] == "forbidden"
    assert await state(redis) == before
