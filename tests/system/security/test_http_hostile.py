"""Finding 8 (HTTP): deep JSON is a 400, JSON under another Content-Type a 415, unknown routes
and wrong methods answer the JSON error shape, the Server header names no software, and
Socket.IO takes connections from its own origin only unless told otherwise."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from core.domain import SeedFile
from core.http_api import roles_of
from core.tokens import Tokens
from loadtest.processes import ServeProcess
from tests.conftest import Node, NodeFactory
from tests.system.recorder.conftest import record
from tests.system.security.conftest import SUBJECTS, state
from tests.system.security.test_matrix import PUBLIC

#: Every route that reads a JSON body, with a path to send it to.
JSON_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/account/deposits"): "/api/v1/account/deposits",
    ("PUT", "/api/v1/account/settings"): "/api/v1/account/settings",
    ("POST", "/api/v1/account/blocks"): "/api/v1/account/blocks",
    ("POST", "/api/v1/account/contacts"): "/api/v1/account/contacts",
    ("PUT", "/api/v1/admin/facilities/{facility_id}"): "/api/v1/admin/facilities/SQ",
    (
        "PUT",
        "/api/v1/admin/contacts/{resident_id}/{family_id}",
    ): "/api/v1/admin/contacts/R1/FATTY",
    ("PUT", "/api/v1/recordings/{call_id}/legal-hold"): "/api/v1/recordings/{call}/legal-hold",
    # v1.2: accounts and sign-in (the first five are public), push subscriptions
    ("POST", "/api/v1/signup"): "/api/v1/signup",
    ("POST", "/api/v1/signup/confirm"): "/api/v1/signup/confirm",
    ("POST", "/api/v1/login"): "/api/v1/login",
    ("POST", "/api/v1/password-reset"): "/api/v1/password-reset",
    ("POST", "/api/v1/password-reset/confirm"): "/api/v1/password-reset/confirm",
    ("POST", "/api/v1/account/staff/otp/confirm"): "/api/v1/account/staff/otp/confirm",
    ("PUT", "/api/v1/admin/identity/{family_id}"): "/api/v1/admin/identity/FUNVERIFIED",
    ("PUT", "/api/v1/admin/staff/{staff_id}"): "/api/v1/admin/staff/S9",
    ("PUT", "/api/v1/admin/residents/{resident_id}/pin"): "/api/v1/admin/residents/R1/pin",
    ("POST", "/api/v1/tablet/login"): "/api/v1/tablet/login",
    ("POST", "/api/v1/account/push-subscriptions"): "/api/v1/account/push-subscriptions",
    # v1.2: scheduled visits
    ("POST", "/api/v1/visits"): "/api/v1/visits",
    ("PUT", "/api/v1/admin/visits/{visit_id}"): "/api/v1/admin/visits/V-none",
}
#: Routes whose bodies have a limit under the nested bodies sent below (a push subscription,
#: 4 KiB): those answer 422 for the size (push/http_api.py), before any parsing.
SMALL_BODIES = {("POST", "/api/v1/account/push-subscriptions")}
#: Every other route that changes something: it reads no body.
NO_BODY_ROUTES = {
    ("POST", "/api/v1/account/close"),
    ("POST", "/api/v1/recordings/{call_id}/verify"),
    ("DELETE", "/api/v1/account/blocks/{facility_id}"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/account/staff/otp"),
    ("POST", "/api/v1/tablet/renew"),
    ("DELETE", "/api/v1/admin/staff/{staff_id}"),
    ("DELETE", "/api/v1/account/push-subscriptions/{sub_id}"),
    ("DELETE", "/api/v1/visits/{visit_id}"),
    ("POST", "/api/v1/alerts/{alert_id}/read"),
}
#: Routes that read a multipart form (tests/system/security/test_accounts_hostile.py).
FORM_ROUTES = {("POST", "/api/v1/account/identity")}
NESTED = "[" * 8000 + "]" * 8000


def json_error(body: Any, code: str | None = None) -> bool:
    shape = isinstance(body, dict) and set(body) == {"error"}
    shape = shape and set(body["error"]) == {"code", "message"} and bool(body["error"]["message"])
    return bool(shape) and (code is None or body["error"]["code"] == code)


async def test_every_route_with_a_body_is_listed(node: Node) -> None:
    """A new route that changes something must be added here (and so to the tests below)."""
    for route in node.node.app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if route.method in ("POST", "PUT", "PATCH", "DELETE") and canonical.startswith("/api"):
            key = (route.method, canonical)
            listed = key in JSON_ROUTES or key in NO_BODY_ROUTES or key in FORM_ROUTES
            assert listed, f"unlisted route {key}"


@pytest.fixture
async def recording(node: Node) -> str:
    """A recording's call id, for the legal-hold route (it looks the recording up first)."""
    call_id = uuid.uuid4().hex
    await record(node.node.recording.service, call_id, b"recorded")
    return call_id


def role_for(node: Node, method: str, canonical: str) -> str | None:
    """A role the route admits (None: a public route, see test_matrix.PUBLIC)."""
    for route in node.node.app.router.routes():
        if route.method == method and route.resource and route.resource.canonical == canonical:
            roles = roles_of(route.handler)
            if roles is None:
                assert PUBLIC.match(canonical), f"{method} {canonical} is not guarded"
                return None
            return sorted(roles)[0]
    raise AssertionError(f"no route {method} {canonical}")


def bearer_for(tokens: Tokens, role: str | None) -> dict[str, str]:
    """The Authorization header of ``role``'s standard subject (none for a public route)."""
    if role is None:
        return {}
    return {"Authorization": f"Bearer {tokens.issue(role, SUBJECTS[role])}"}


@pytest.mark.parametrize(("route", "path"), list(JSON_ROUTES.items()), ids=str)
async def test_deeply_nested_json_is_a_400_that_changes_nothing(
    node: Node, recording: str, tokens: Tokens, redis: Redis, route: tuple[str, str], path: str
) -> None:
    method, canonical = route
    path = path.format(call=recording)
    role = role_for(node, method, canonical)
    headers = {**bearer_for(tokens, role), "Content-Type": "application/json"}
    before = await state(redis)
    async with (
        aiohttp.ClientSession(base_url=node.url) as http,
        http.request(method, path, data=NESTED, headers=headers) as response,
    ):
        if route in SMALL_BODIES:  # refused by its size before it is parsed
            assert response.status == 422 and json_error(await response.json(), "invalid_request")
        else:
            assert response.status == 400
            assert json_error(await response.json(), "invalid_json")
            async with http.request(method, path, data='{"a":' * 2500 + "1" + "}" * 2500,
                                    headers=headers) as again:  # fmt: skip
                assert again.status == 400 and json_error(await again.json(), "invalid_json")
    assert await state(redis) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize(("route", "path"), list(JSON_ROUTES.items()), ids=str)
async def test_json_under_another_content_type_is_a_415(
    node: Node,
    recording: str,
    tokens: Tokens,
    redis: Redis,
    route: tuple[str, str],
    path: str,
    content_type: str,
) -> None:
    method, canonical = route
    path = path.format(call=recording)
    role = role_for(node, method, canonical)
    headers = {**bearer_for(tokens, role), "Content-Type": content_type}
    before = await state(redis)
    async with (
        aiohttp.ClientSession(base_url=node.url) as http,
        http.request(method, path, data='{"amount_cents": 500}', headers=headers) as response,
    ):
        assert response.status == 415
        assert json_error(await response.json(), "unsupported_media_type")
    assert await state(redis) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/api/v1/nope", 404, "not_found"),
        ("GET", "/static/../../etc/passwd", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("POST", "/api/v1/account", 405, "method_not_allowed"),
        ("PATCH", "/api/v1/admin/facilities/SQ", 405, "method_not_allowed"),
    ],
)
async def test_unknown_routes_and_wrong_methods_answer_json(
    node: Node, method: str, path: str, status: int, code: str
) -> None:
    async with (
        aiohttp.ClientSession(base_url=node.url) as http,
        http.request(method, path) as response,
    ):
        assert response.status == status
        assert response.content_type == "application/json"
        assert json_error(await response.json(), code)
        if status == 405:
            assert response.headers["Allow"]


async def test_the_server_header_names_no_software(node: Node) -> None:
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for path in ("/healthz", "/", "/nope", "/api/v1/account"):
            async with http.get(path) as response:
                server = response.headers.get("Server", "")
                assert "python" not in server.lower() and "aiohttp" not in server.lower()


async def handshake(url: str, origin: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
        ) as response,
    ):
        return response.status


async def test_socketio_takes_its_own_origin_only_by_default(node: Node) -> None:
    assert await handshake(node.url, "http://evil.example") == 400
    assert await handshake(node.url, node.url) == 200


async def test_allowed_origins_are_configurable(start_node: NodeFactory, seeded: SeedFile) -> None:
    node = await start_node(allowed_origins=["https://visits.example.org"])
    assert await handshake(node.url, "https://visits.example.org") == 200
    assert await handshake(node.url, "http://evil.example") == 400


async def raw_http(url: str, request: bytes) -> list[bytes]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    return head.split(b"\r\n")


NOT_HTTP = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n"]


async def test_a_request_that_is_no_http_names_no_software(node: Node) -> None:
    for request in NOT_HTTP:
        head = await raw_http(node.url, request)
        assert head[0].split(b" ")[1] == b"400"
        assert [h for h in head if h.lower().startswith(b"server:")] == [b"Server: visitation"]


def test_serve_logs_a_request_that_is_no_http_in_one_line(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "var", "--workers", "0", env={"REDIS_URL": ""}).wait_ready(30)
    try:
        for _ in range(3):
            for request in NOT_HTTP:
                asyncio.run(raw_http(proc.url, request))
    finally:
        assert proc.terminate() == 0
    output = "".join(proc.output)
    assert "Traceback" not in output and "BadHttpMessage" in output
