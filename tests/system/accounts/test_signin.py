"""Families sign up, confirm, sign in and out, and reset their password, against a real node
that mails through a real SMTP server on loopback (PROTOCOL v1.2 "Accounts and sign-in")."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis

from accounts.redis_keys import LOGIN_EMAIL, LOGIN_FAMILY
from client.session import ProtocolClient
from core.directory import Directory
from core.domain import Family
from core.tokens import Tokens
from tests.conftest import TEST_RATE_LIMITS, Node, NodeFactory
from tests.seeds import SIGN_IN
from tests.system.accounts.conftest import (
    MAIL_FROM,
    Mailbox,
    get,
    html_part,
    lasting,
    link_code,
    post,
    text_part,
)
from tests.waiting import eventually

F1_LOGIN = {"email": SIGN_IN["F1"]["email"], "password": SIGN_IN["F1"]["password"]}
NEW = {"email": "New.Person@Example.org", "password": "a long pass phrase", "name": "New Person"}


def changed(before: dict[bytes, Any], after: dict[bytes, Any]) -> set[bytes]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


async def sign_up(node: Node, **changes: str) -> dict[str, object]:
    answer = await post(node.url, "/api/v1/signup", {**NEW, **changes})
    assert answer.status == 201, answer.body
    return answer.body


async def login(node: Node, email: str, password: str) -> str:
    answer = await post(node.url, "/api/v1/login", {"email": email, "password": password})
    assert answer.status == 200, answer.body
    return str(answer.body["token"])


async def test_sign_up_confirm_sign_in_and_use_the_account(
    mail_node: Node, smtp_server: Mailbox, redis: Redis
) -> None:
    node = mail_node
    body = await sign_up(node, phone="+1 415 555 0100")
    family_id = str(body["family_id"])
    assert body == {"family_id": family_id, "email_verified": False, "verified": False}
    family = await Directory(redis).family(family_id)
    assert family == Family(id=family_id, name="New Person", verified=False)
    # The password is stored only as its Argon2id hash; the e-mail lower case.
    stored = await redis.hgetall(LOGIN_FAMILY(family_id))
    assert stored[b"password"].startswith(b"$argon2id$")
    assert b"a long pass phrase" not in b"".join(stored.values())
    assert stored[b"email"] == b"new.person@example.org"

    mail = await smtp_server.next_to("new.person@example.org")
    assert mail["From"] == MAIL_FROM and "Confirm" in mail["Subject"]
    code = link_code(mail, "confirm", node.url)  # the link to the node's own address
    assert f"{node.url}/family?confirm={code}" in html_part(mail)  # an HTML part too
    assert not [k async for k in redis.scan_iter(f"*{code}*")]  # the code is stored hashed

    # Signing in works before the confirmation too; the token is a family token.
    token = await login(node, "NEW.person@example.org", NEW["password"])
    account = await get(node.url, "/api/v1/account", token)
    assert account.status == 200 and account.body["family_id"] == family_id
    assert account.body["balance_cents"] == 0

    confirmed = await post(node.url, "/api/v1/signup/confirm", {"code": code})
    assert (confirmed.status, confirmed.body) == (200, {"email_verified": True})
    assert (await redis.hget(LOGIN_FAMILY(family_id), "email_verified")) == b"1"
    again = await post(node.url, "/api/v1/signup/confirm", {"code": code})
    assert again.status == 410 and again.body["error"]["code"] == "code_expired"


async def test_the_answer_to_login_names_role_subject_and_expiry(mail_node: Node) -> None:
    before = time.time()
    answer = await post(
        mail_node.url,
        "/api/v1/login",
        {"email": SIGN_IN["F1"]["email"], "password": SIGN_IN["F1"]["password"]},
    )
    assert answer.status == 200
    assert set(answer.body) == {"token", "role", "subject", "expires_at"}
    assert (answer.body["role"], answer.body["subject"]) == ("family", "F1")
    assert before + 24 * 3600 - 2 <= answer.body["expires_at"] <= time.time() + 24 * 3600


async def test_a_registered_email_gets_the_same_answer_and_its_owner_a_warning(
    mail_node: Node, smtp_server: Mailbox, redis: Redis
) -> None:
    owner = SIGN_IN["F1"]["email"]
    before = await lasting(redis)
    body = await sign_up(mail_node, email=owner.upper(), name="Impostor")
    assert set(body) == {"family_id", "email_verified", "verified"}
    assert body["family_id"] != "F1" and str(body["family_id"]).startswith("F")
    assert (body["email_verified"], body["verified"]) == (False, False)
    warning = await smtp_server.next_to(owner)
    assert "tried" in warning["Subject"] and "/family?confirm=" not in text_part(warning)
    assert await Directory(redis).family(str(body["family_id"])) is None
    assert await redis.get(LOGIN_EMAIL(owner)) == b"F1"
    assert all(k.startswith(b"mail:outbox") for k in changed(before, await lasting(redis)))
    # Its password is unchanged.
    await login(mail_node, owner, SIGN_IN["F1"]["password"])


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short pw", "at least 10 characters"),
        ("rule.case.person@example.org", "e-mail"),
        ("Rule.Case.Person", "e-mail"),
        ("password123", "common password"),
        ("QWERTYUIOP", "common password"),
    ],
)
async def test_refused_passwords_name_the_rule_and_create_nothing(
    mail_node: Node, smtp_server: Mailbox, redis: Redis, password: str, rule: str
) -> None:
    before = await lasting(redis)
    answer = await post(
        mail_node.url,
        "/api/v1/signup",
        {"email": "rule.case.person@example.org", "password": password, "name": "Rule Case"},
    )
    assert answer.status == 422, answer.body
    assert answer.body["error"]["code"] == "invalid_request"
    assert rule in answer.body["error"]["message"]
    assert await lasting(redis) == before
    assert smtp_server.received == []


@pytest.mark.parametrize(
    "email",
    ["nul\x00@example.org", "a" * 10_000 + "@example.org", "no-at-sign", "two@@example.org", ""],
    ids=["nul", "10KB", "no-at", "two-at", "empty"],
)
async def test_hostile_emails_are_422_and_change_nothing(
    mail_node: Node, redis: Redis, email: str
) -> None:
    before = await lasting(redis)
    for path, body in [
        ("/api/v1/signup", {"email": email, "password": "a long pass phrase", "name": "X"}),
        ("/api/v1/login", {"email": email, "password": "a long pass phrase"}),
        ("/api/v1/password-reset", {"email": email}),
    ]:
        answer = await post(mail_node.url, path, body)
        assert answer.status == 422, (path, answer.body)
        assert answer.body["error"]["code"] == "invalid_request"
        assert "email" in answer.body["error"]["message"]
    assert await lasting(redis) == before


async def test_public_routes_answer_the_json_error_shape(mail_node: Node) -> None:
    for path in [
        "/api/v1/signup",
        "/api/v1/login",
        "/api/v1/password-reset",
        "/api/v1/signup/confirm",
    ]:
        answer = await post(mail_node.url, path, {"unexpected": True})
        assert answer.status == 422 and set(answer.body["error"]) == {"code", "message"}
        text = await post(mail_node.url, path, data="x", headers={"Content-Type": "text/plain"})
        assert text.status == 415 and text.body["error"]["code"] == "unsupported_media_type"
    both = {"email": "a@example.org", "staff_id": "S1", "password": "x"}
    answer = await post(mail_node.url, "/api/v1/login", both)
    assert answer.status == 422 and "either email" in answer.body["error"]["message"]


async def test_reset_revokes_every_older_token(
    mail_node: Node, smtp_server: Mailbox, redis: Redis
) -> None:
    email, password = SIGN_IN["F2"]["email"], SIGN_IN["F2"]["password"]
    old = await login(mail_node, email, password)
    socket = await ProtocolClient(mail_node.url, old, "F2").connect()
    try:
        asked = await post(mail_node.url, "/api/v1/password-reset", {"email": email.upper()})
        assert (asked.status, asked.body) == (202, {})
        mail = await smtp_server.next_to(email)
        code = link_code(mail, "reset", mail_node.url)
        # A refused password does not spend the code.
        weak = await post(
            mail_node.url,
            "/api/v1/password-reset/confirm",
            {"code": code, "password": "password123"},
        )
        assert weak.status == 422 and "common" in weak.body["error"]["message"]
        done = await post(
            mail_node.url,
            "/api/v1/password-reset/confirm",
            {"code": code, "password": "a brand new phrase"},
        )
        assert (done.status, done.body) == (200, {})
        assert (await get(mail_node.url, "/api/v1/account", old)).status == 401
        assert await socket.next("session.expired", timeout=3) == {}
        wrong = await post(mail_node.url, "/api/v1/login", {"email": email, "password": password})
        assert wrong.status == 401
        fresh = await login(mail_node, email, "a brand new phrase")
        assert (await get(mail_node.url, "/api/v1/account", fresh)).status == 200
        used = await post(
            mail_node.url,
            "/api/v1/password-reset/confirm",
            {"code": code, "password": "another new phrase"},
        )
        assert used.status == 410 and used.body["error"]["code"] == "code_expired"
    finally:
        await socket.close()


async def test_a_reset_ends_the_other_reset_links_of_the_account(
    mail_node: Node, smtp_server: Mailbox
) -> None:
    """Someone who asked twice (or an attacker who asked too) holds two links: once the
    password is reset with one, the other no longer works."""
    email = SIGN_IN["F2"]["email"]
    codes = []
    for seen in range(2):
        asked = await post(mail_node.url, "/api/v1/password-reset", {"email": email})
        assert asked.status == 202
        mail = await smtp_server.next_to(email, seen)
        codes.append(link_code(mail, "reset", mail_node.url))
    assert codes[0] != codes[1]
    done = await post(
        mail_node.url,
        "/api/v1/password-reset/confirm",
        {"code": codes[1], "password": "a brand new phrase"},
    )
    assert (done.status, done.body) == (200, {})
    other = await post(
        mail_node.url,
        "/api/v1/password-reset/confirm",
        {"code": codes[0], "password": "an attacker's phrase"},
    )
    assert other.status == 410 and other.body["error"]["code"] == "code_expired"
    await login(mail_node, email, "a brand new phrase")


async def test_reset_of_an_unknown_email_answers_the_same_and_sends_nothing(
    mail_node: Node, smtp_server: Mailbox
) -> None:
    asked = await post(mail_node.url, "/api/v1/password-reset", {"email": "nobody@example.org"})
    assert (asked.status, asked.body) == (202, {})
    known = await post(mail_node.url, "/api/v1/password-reset", {"email": SIGN_IN["F1"]["email"]})
    assert (known.status, known.body) == (202, {})
    await smtp_server.next_to(SIGN_IN["F1"]["email"])
    assert smtp_server.to("nobody@example.org") == []


async def test_expired_and_unknown_codes_are_410(mail_node: Node, redis: Redis) -> None:
    for path, extra in [
        ("/api/v1/signup/confirm", {}),
        ("/api/v1/password-reset/confirm", {"password": "a brand new phrase"}),
    ]:
        for code in ["never-issued", "x" * 128]:
            answer = await post(mail_node.url, path, {"code": code, **extra})
            assert answer.status == 410 and answer.body["error"]["code"] == "code_expired", (
                answer.body
            )
    # An expired code: the same answer once Redis let it go.
    codes = mail_node.node.accounts.signin.confirm_codes
    code = await codes.issue("F1", 0.05)
    await eventually(lambda: _no_code(redis), "the code expires")
    answer = await post(mail_node.url, "/api/v1/signup/confirm", {"code": code})
    assert answer.status == 410 and answer.body["error"]["code"] == "code_expired"


async def _no_code(redis: Redis) -> bool:
    return not [k async for k in redis.scan_iter("code:confirm:*")]


async def test_logout_revokes_that_token_only(mail_node: Node) -> None:
    email, password = SIGN_IN["F1"]["email"], SIGN_IN["F1"]["password"]
    token, other = await login(mail_node, email, password), await login(mail_node, email, password)
    socket = await ProtocolClient(mail_node.url, token, "F1").connect()
    bystander = await ProtocolClient(mail_node.url, other, "F1 again").connect()
    try:
        out = await post(mail_node.url, "/api/v1/logout", token=token)
        assert out.status == 200, out.body
        started = time.monotonic()
        assert await socket.next("session.expired", timeout=2.5) == {}
        assert time.monotonic() - started < 2.5
        again = await get(mail_node.url, "/api/v1/account", token)
        assert again.status == 401 and again.body["error"]["message"] == "token revoked"
        assert (await post(mail_node.url, "/api/v1/logout", token=token)).status == 401
        assert (await get(mail_node.url, "/api/v1/account", other)).status == 200
        assert bystander.sio.connected
        assert (await bystander.request("session.info"))["id"] == "F1"
    finally:
        await socket.close()
        await bystander.close()


async def test_logout_works_for_every_role_but_a_device(mail_node: Node, tokens: Tokens) -> None:
    for role, subject in [
        ("tablet", "R1"),
        ("monitor", "S1"),
        ("investigator", "I1"),
        ("admin", "A1"),
    ]:
        token = tokens.issue(role, subject)
        assert (await post(mail_node.url, "/api/v1/logout", token=token)).status == 200
        assert (await post(mail_node.url, "/api/v1/logout", token=token)).status == 401
    device = await post(mail_node.url, "/api/v1/logout", token=tokens.issue("device", "SQ"))
    assert device.status == 403


async def test_public_routes_are_limited_per_address(
    start_node: NodeFactory, seeded: object, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISITATION_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("VISITATION_MAIL_FROM", MAIL_FROM)
    node = await start_node(rate_limits=replace(TEST_RATE_LIMITS, http_address="4/minute"))
    reset = {"email": "someone@example.org"}
    statuses = [(await post(node.url, "/api/v1/password-reset", reset)).status for _ in range(4)]
    assert statuses == [202] * 4
    for path, body in [("/api/v1/password-reset", reset), ("/api/v1/login", F1_LOGIN)]:
        limited = await post(node.url, path, body)
        assert limited.status == 429 and limited.body["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
