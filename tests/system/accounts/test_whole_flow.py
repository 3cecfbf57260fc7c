"""The issue's whole flow, as real people would go through it, on a real node with a real SMTP
server on loopback: a family signs up and confirms its e-mail, uploads an ID, asks for a
contact; a scoped admin verifies it and approves the contact; the resident signs in on the
unit's shared tablet with a PIN and calls the new family, which answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.session import ProtocolClient
from core.domain import SeedFile, Staff
from core.tokens import Tokens
from tests.conftest import Node, NodeFactory, start_sfu_worker
from tests.system.accounts.conftest import MAIL_FROM, Mailbox, link_code
from tests.system.accounts.identity_images import images, upload

EMAIL = "maria.new@example.org"
PASSWORD = "my own long passphrase 2026"


@pytest.fixture
async def paying_mail_node(
    start_node: NodeFactory,
    seeded: SeedFile,
    smtp_server: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    recordings_dir: Path,
) -> AsyncIterator[Node]:
    """A node of the standard seed mailing through the loopback server, with the fake card
    processor (a new family must deposit before it can take a call) and a real SFU worker."""
    monkeypatch.setenv("VISITATION_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("VISITATION_MAIL_FROM", MAIL_FROM)
    monkeypatch.delenv("VISITATION_PUBLIC_URL", raising=False)
    node = await start_node(payment_processor="fake")
    await node.node.directory.save_staff(Staff(id="ASQ", role="admin", facility_ids=["SQ"]))
    async with start_sfu_worker(redis_url, recordings_dir, "flow-sfu"):
        yield node


async def api(
    node: Node, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, json=body, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()


async def test_sign_up_to_a_first_call(
    paying_mail_node: Node, smtp_server: Mailbox, tokens: Tokens
) -> None:
    node = paying_mail_node
    # 1. The family signs up, confirms from the e-mail's link, and signs in.
    signup = {"email": EMAIL, "password": PASSWORD, "name": "Maria New"}
    status, created = await api(node, "POST", "/api/v1/signup", body=signup)
    assert status == 201 and created["verified"] is False, created
    family_id = created["family_id"]
    code = link_code(await smtp_server.next_to(EMAIL), "confirm", node.url)
    status, confirmed = await api(node, "POST", "/api/v1/signup/confirm", body={"code": code})
    assert (status, confirmed) == (200, {"email_verified": True})
    status, signed_in = await api(
        node, "POST", "/api/v1/login", body={"email": EMAIL, "password": PASSWORD}
    )
    assert status == 200 and signed_in["role"] == "family", signed_in
    family = signed_in["token"]
    assert signed_in["subject"] == family_id

    # 2. It uploads its ID and selfie, asks to be R1's contact, and deposits.
    assert await upload(node.url, family, images()) == (202, {"identity": "pending"})
    status, asked = await api(
        node, "POST", "/api/v1/account/contacts", family, {"resident_id": "R1"}
    )
    assert (status, asked) == (201, {"status": "pending"})
    status, _ = await api(node, "POST", "/api/v1/account/deposits", family, {"amount_cents": 500})
    assert status in (200, 201)

    # 3. The admin of SQ (only) reviews: the ID, then the contact.
    admin = tokens.issue("admin", "ASQ")
    status, queue = await api(node, "GET", "/api/v1/admin/identity?status=pending", admin)
    assert queue["reviews"] == [
        {
            "family_id": family_id,
            "name": "Maria New",
            "email": EMAIL,
            "submitted_at": queue["reviews"][0]["submitted_at"],
        }
    ]
    for kind in ("id_front", "id_back", "selfie"):
        status, image = await api(node, "GET", f"/api/v1/admin/identity/{family_id}/{kind}", admin)
        assert status == 200 and image[:2] == b"\xff\xd8"
    status, decided = await api(
        node, "PUT", f"/api/v1/admin/identity/{family_id}", admin, {"status": "verified"}
    )
    assert status == 200 and decided["verified"] is True
    views = await node.node.accounts_admin.audit.for_family(family_id)
    assert [(e["action"], e["staff_id"]) for e in views] == [("view", "ASQ")] * 3 + [
        ("review", "ASQ")
    ]
    status, requests = await api(node, "GET", "/api/v1/admin/contacts?status=pending", admin)
    assert any(r["family"]["id"] == family_id for r in requests["contacts"]), requests
    status, approved = await api(
        node, "PUT", f"/api/v1/admin/contacts/R1/{family_id}", admin, {"status": "approved"}
    )
    assert status == 200 and approved["status"] == "approved"

    # 4. R1 signs in on the unit's shared tablet with a PIN, and calls; the family answers.
    status, _ = await api(node, "PUT", "/api/v1/admin/residents/R1/pin", admin, {"pin": "5150"})
    assert status == 200
    device = tokens.issue("device", "SQ")
    status, tablet_login = await api(
        node, "POST", "/api/v1/tablet/login", device, {"resident_id": "R1", "pin": "5150"}
    )
    assert status == 200 and tablet_login["role"] == "tablet"
    async with (
        ProtocolClient(node.url, family, "family") as phone,
        ProtocolClient(node.url, tablet_login["token"], "tablet") as tablet,
    ):
        call_id = await tablet.place(family_id)
        incoming = await phone.next("call.incoming")
        assert incoming["call_id"] == call_id and incoming["resident"]["id"] == "R1"
        await phone.accept(call_id)
        assert (await tablet.next("call.accepted"))["call_id"] == call_id
        await tablet.hangup(call_id)
