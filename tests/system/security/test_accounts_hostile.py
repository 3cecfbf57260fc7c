"""Hostile input to the v1.2 accounts routes: each gets a clear error and changes nothing.

Images that are no images, a 50 MB upload, a NUL or a 10 KB e-mail, a code used twice or
expired, an admin reaching for staff, residents or families of another facility or giving a
wider scope than its own. (A device token on any other route: tests/system/security/test_matrix.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from accounts.codes import OneTimeCodes
from core.domain import Staff
from core.tokens import Tokens
from tests.conftest import Node
from tests.system.accounts.conftest import link_code, mail_node, smtp_server
from tests.system.accounts.identity_images import gif, images, photo_with_gps, upload
from tests.system.security.conftest import settled, state
from tests.system.security.test_http_hostile import json_error
from tests.waiting import eventually

__all__ = ["mail_node", "smtp_server"]  # fixtures of tests/system/accounts, used here

PASSWORD = "a perfectly long passphrase 42"


def identity_files(node: Node) -> list[Path]:
    root = node.node.settings.data_dir / "identity"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def send(
    node: Node, method: str, path: str, token: str | None = None, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, headers=headers, **kw) as response,
    ):
        return response.status, await response.json()


NOT_IMAGES = {
    "text": b"hello, I am a JPEG",
    "html": b"<html><script>alert(1)</script></html>",
    "svg": b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
    "gif": gif(),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
    "elf": b"\x7fELF\x02\x01\x01" + b"\x00" * 100,
    "jpeg-header-only": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "truncated-jpeg": photo_with_gps()[:400],
    "png-header-only": b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,
}


@pytest.mark.parametrize("kind", ["id_front", "selfie"])
@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
async def test_images_that_are_no_images(
    node: Node, tokens: Tokens, redis: Redis, name: str, kind: str
) -> None:
    before = await state(redis)
    status, body = await upload(
        node.url, tokens.issue("family", "FUNVERIFIED"), images(**{kind: NOT_IMAGES[name]})
    )
    assert status == 422 and json_error(body, "invalid_image"), body
    assert kind in body["error"]["message"]
    assert await state(redis) == before and identity_files(node) == []


async def test_a_50_mb_upload(node: Node, tokens: Tokens, redis: Redis) -> None:
    before = await state(redis)
    huge = b"\xff\xd8\xff" + bytes(50 * 1024 * 1024)
    status, body = await upload(
        node.url, tokens.issue("family", "FUNVERIFIED"), images(id_back=huge)
    )
    assert status == 413 and json_error(body, "payload_too_large"), body
    assert await state(redis) == before and identity_files(node) == []
    # Without a token it is refused before anything else.
    status, body = await upload(node.url, "", images(id_back=huge))
    assert status == 401 and json_error(body, "unauthorized")


@pytest.mark.parametrize(
    "email",
    ["ana\x00@example.org", "ana@example.org\x00", "a" * 10_000 + "@example.org",
     "ana@" + "b" * 10_000 + ".org", "", "not an e-mail", "ana@example.org\r\nBcc: x@y.z"],
    ids=["nul", "nul-at-end", "10kb-local", "10kb-domain", "empty", "no-at", "header-injection"],
)  # fmt: skip
@pytest.mark.parametrize("route", ["/api/v1/signup", "/api/v1/login", "/api/v1/password-reset"])
async def test_a_nul_or_10_kb_email(mail_node: Node, redis: Redis, route: str, email: str) -> None:
    body: dict[str, Any] = {"email": email}
    if route != "/api/v1/password-reset":
        body["password"] = PASSWORD
    if route == "/api/v1/signup":
        body["name"] = "Ana Doe"
    before = await state(redis)
    status, answer = await send(mail_node, "POST", route, json=body)
    assert status == 422 and json_error(answer, "invalid_request"), answer
    assert "email" in answer["error"]["message"]
    assert settled(await state(redis)) == settled(before)


async def test_a_reused_or_expired_code(mail_node: Node, smtp_server: Any, redis: Redis) -> None:
    signup = {"email": "ana@example.org", "password": PASSWORD, "name": "Ana Doe"}
    status, created = await send(mail_node, "POST", "/api/v1/signup", json=signup)
    assert status == 201, created
    letter = await smtp_server.next_to("ana@example.org")
    code = link_code(letter, "confirm", mail_node.url)
    assert (await send(mail_node, "POST", "/api/v1/signup/confirm", json={"code": code}))[0] == 200
    before = await state(redis)
    for reused in (code, code + "x", "x" * 128, "\x00"):
        status, answer = await send(
            mail_node, "POST", "/api/v1/signup/confirm", json={"code": reused}
        )
        assert status == 410 and json_error(answer, "code_expired"), (reused, answer)
    # An expired code (its key is gone from Redis) is the same answer, for a reset too.
    for purpose, route, extra in (
        ("confirm", "/api/v1/signup/confirm", {}),
        ("reset", "/api/v1/password-reset/confirm", {"password": "an entirely new one 77"}),
    ):
        codes = OneTimeCodes(redis, purpose)
        expired = await codes.issue(created["family_id"], ttl_s=0.05)
        await eventually(lambda c=codes, e=expired: _gone(c, e), "the code to expire")  # type: ignore[misc]
        before = await state(redis)
        status, answer = await send(mail_node, "POST", route, json={"code": expired, **extra})
        assert status == 410 and json_error(answer, "code_expired"), answer
        assert await state(redis) == before


async def _gone(codes: OneTimeCodes, code: str) -> bool:
    return await codes.peek(code) is None


@pytest.fixture
async def scoped_admin(node: Node) -> str:
    """An admin of SQ only."""
    await node.node.directory.save_staff(Staff(id="ASQ", role="admin", facility_ids=["SQ"]))
    return "ASQ"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/api/v1/admin/staff/S9", {"role": "monitor", "facility_ids": ["*"]}, 403),
        ("PUT", "/api/v1/admin/staff/S9", {"role": "monitor", "facility_ids": ["CLOSED"]}, 403),
        ("PUT", "/api/v1/admin/staff/A9", {"role": "admin", "facility_ids": ["SQ", "CLOSED"]}, 403),
        ("PUT", "/api/v1/admin/staff/S2", {"role": "monitor", "facility_ids": ["SQ"]}, 403),
        ("PUT", "/api/v1/admin/staff/A1", {"role": "admin", "facility_ids": ["SQ"]}, 403),
        ("PUT", "/api/v1/admin/staff/I1",
         {"role": "investigator", "facility_ids": ["SQ"], "password": PASSWORD}, 403),
        ("DELETE", "/api/v1/admin/staff/S2", None, 404),
        ("DELETE", "/api/v1/admin/staff/A1", None, 404),
        ("PUT", "/api/v1/admin/residents/R3/pin", {"pin": "1234"}, 404),
        ("PUT", "/api/v1/admin/identity/FUNVERIFIED", {"status": "verified"}, 404),
    ],
    ids=lambda v: str(v)[:40],
)  # fmt: skip
async def test_an_admin_reaching_beyond_its_scope(
    node: Node,
    tokens: Tokens,
    redis: Redis,
    scoped_admin: str,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    # FUNVERIFIED's contacts are at SQ: to the admin of CLOSED it is out of scope.
    admin = "A2" if "identity" in path else scoped_admin
    assert (await upload(node.url, tokens.issue("family", "FUNVERIFIED"), images()))[0] == 202
    before = await state(redis)
    got, answer = await send(node, method, path, tokens.issue("admin", admin), json=body)
    assert got == status and json_error(answer), answer
    assert await state(redis) == before
