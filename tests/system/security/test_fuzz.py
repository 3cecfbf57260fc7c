"""A property-based fuzzer over every Socket.IO event and every JSON body (hypothesis).

Whatever arrives, the answer is a clear error (an ack ``{"ok": false, "error": {"code",
"message"}}``, or an HTTP 4xx in the JSON error shape; a harmless read may succeed), the server
stays healthy, and no state changes: the ledger, calls, the directory, the recordings' catalog
(all of Redis but counters and liveness). Events and routes come from the routing tables, so a
new one is fuzzed the day it is added.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from client.session import ProtocolClient
from core.errors import ErrorCode
from core.tokens import Tokens
from tests.conftest import Node
from tests.seeds import standard_seed_data
from tests.system.security.conftest import SOCKET_SUBJECTS, settled, state
from tests.system.security.test_http_hostile import JSON_ROUTES, bearer_for, role_for

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CODES = {code.value for code in ErrorCode} - {"internal"}
SEEDED = {row["id"] for kind in ("residents", "families") for row in standard_seed_data()[kind]}
FIELDS = ["call_id", "contact_id", "sdp", "note", "reason", "amount_cents", "status",
          "privileged", "facility_id", "allow_video_calls", "autopay", "hold",
          "resident_id",
          # v1.2: accounts and sign-in, staff, PINs, push subscriptions
          "email", "password", "name", "phone", "code", "staff_id", "otp", "role",
          "facility_ids", "pin", "endpoint", "keys"]  # fmt: skip
# Ids that are no seeded resident or family: a random payload never names a real party.
ids = st.text(max_size=80).filter(lambda s: s not in SEEDED)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | ids
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Objects with the protocol's own field names, so payloads get past the first checks too.
objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4)
payloads = objects | json_values


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


def clear_error(ack: Any) -> bool:
    if not isinstance(ack, dict) or set(ack) != {"ok", "error"} or ack["ok"] is not False:
        return False
    error = ack["error"]
    return set(error) == {"code", "message"} and error["code"] in CODES and bool(error["message"])


@FUZZ
@given(data=st.data(), payload=payloads)
async def test_socket_events_fuzzed(
    data: st.DataObject,
    payload: Any,
    node: Node,
    redis: Redis,
    everyone: dict[str, ProtocolClient],
) -> None:
    routes = node.node.sockets.routes
    event = data.draw(st.sampled_from(sorted(routes)), label="event")
    role = data.draw(st.sampled_from(sorted(SOCKET_SUBJECTS)), label="role")
    client = everyone[role]
    before = await state(redis)
    ack = await client.sio.call(event, payload, timeout=10)
    read_only = event in {
        "session.info",
        "contacts.list",
        "monitor.calls",
        "visits.list",
        "calls.recent",
    }
    assert clear_error(ack) or (read_only and ack.get("ok") is True), (event, role, ack)
    assert await state(redis) == before, (event, role, payload)
    assert (await client.request("session.info"))["id"] == SOCKET_SUBJECTS[role]  # still served


@FUZZ
@given(data=st.data(), body=payloads, raw=st.booleans())
async def test_json_bodies_fuzzed(
    data: st.DataObject, body: Any, raw: bool, node: Node, redis: Redis, tokens: Tokens
) -> None:
    (method, canonical), path = data.draw(st.sampled_from(sorted(JSON_ROUTES.items())))
    role = role_for(node, method, canonical)
    path = path.format(call="FUZZCALL")
    text = data.draw(st.text(max_size=40)) if raw else json.dumps(body)
    headers = {**bearer_for(tokens, role), "Content-Type": "application/json"}
    before = await state(redis)
    async with (
        aiohttp.ClientSession(base_url=node.url) as http,
        http.request(method, path, data=text.encode(), headers=headers) as response,
    ):
        answer = await response.json()
        assert response.status < 500 or answer["error"]["code"] == "payments_unavailable"
        if response.status >= 400:
            assert set(answer) == {"error"} and answer["error"]["message"], answer
        async with http.get("/healthz") as health:
            assert (await health.json())["redis"] is True
    if response.status >= 400:  # a failed sign-in counts towards its account's lockout only
        assert settled(await state(redis)) == settled(before), (method, path, text)


FORM_FIELDS = ["id_front", "id_back", "selfie"]
IMAGE_HEADS = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"<svg", b"%PDF-"]


@FUZZ
@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(FORM_FIELDS) | st.text("abcdefghijklmnopqrstuvwxyz_.-", max_size=12),
            st.sampled_from(IMAGE_HEADS),
            st.binary(max_size=600),
            st.sampled_from(["image/jpeg", "image/png", "text/plain", "application/octet-stream"]),
        ),
        max_size=5,
    )
)
async def test_identity_forms_fuzzed(
    parts: list[tuple[str, bytes, bytes, str]], node: Node, redis: Redis, tokens: Tokens
) -> None:
    """Random parts (names, magic numbers, bytes): a clear 4xx, nothing stored."""
    form = aiohttp.FormData()
    for name, head, tail, content_type in parts:
        form.add_field(name, head + tail, filename="x.jpg", content_type=content_type)
    if not parts:
        form.add_field("id_front", b"", filename="x.jpg", content_type="image/jpeg")
    headers = {"Authorization": f"Bearer {tokens.issue('family', 'FUNVERIFIED')}"}
    before = await state(redis)
    async with (
        aiohttp.ClientSession(base_url=node.url) as http,
        http.post("/api/v1/account/identity", data=form, headers=headers) as response,
    ):
        answer = await response.json()
        assert 400 <= response.status < 500, answer
        assert set(answer) == {"error"} and answer["error"]["message"], answer
    assert await state(redis) == before
    assert not (node.node.settings.data_dir / "identity").exists() or not any(
        p.is_file() for p in (node.node.settings.data_dir / "identity").rglob("*")
    )
