"""Staff sign in with a password and, once enrolled, a TOTP code (RFC 6238, pyotp as the
authenticator app), against a real node."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
from redis.asyncio import Redis

from accounts.redis_keys import LOGIN_STAFF
from client.session import ProtocolClient
from core.tokens import Tokens
from tests.conftest import Node
from tests.seeds import SIGN_IN
from tests.system.accounts.conftest import get, post

S1 = {"staff_id": "S1", "password": SIGN_IN["S1"]["password"]}


async def enrol(node: Node, token: str) -> pyotp.TOTP:
    answer = await post(node.url, "/api/v1/account/staff/otp", token=token)
    assert answer.status == 200, answer.body
    uri = str(answer.body["otpauth_uri"])
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Visitation:S1"
    query = parse_qs(parts.query)
    assert query["issuer"] == ["Visitation"]
    qr = str(answer.body["qr_svg"])
    assert qr.startswith("data:image/svg+xml")
    assert "<svg" in unquote(qr) and "<path" in unquote(qr)
    return pyotp.TOTP(query["secret"][0])


async def test_a_monitor_enrols_totp_and_then_needs_it(
    mail_node: Node, tokens: Tokens, redis: Redis
) -> None:
    signed = await post(mail_node.url, "/api/v1/login", S1)
    assert signed.status == 200, signed.body
    assert (signed.body["role"], signed.body["subject"]) == ("monitor", "S1")
    token = str(signed.body["token"])
    totp = await enrol(mail_node, token)
    # Pending until confirmed: sign-in does not ask for it yet.
    assert (await post(mail_node.url, "/api/v1/login", S1)).status == 200
    wrong = await post(
        mail_node.url, "/api/v1/account/staff/otp/confirm", {"otp": "000000"}, token=token
    )
    if totp.verify("000000", valid_window=1):  # pragma: no cover - one chance in 300,000
        return
    assert wrong.status == 422 and wrong.body["error"]["code"] == "invalid_request"
    confirmed = await post(
        mail_node.url, "/api/v1/account/staff/otp/confirm", {"otp": totp.now()}, token=token
    )
    assert (confirmed.status, confirmed.body) == (200, {"otp_enabled": True})
    assert (await redis.hget(LOGIN_STAFF("S1"), "totp")) is not None

    missing = await post(mail_node.url, "/api/v1/login", S1)
    assert missing.status == 401 and missing.body["error"]["code"] == "otp_required"
    bad_code = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    if not totp.verify(bad_code, valid_window=1):
        bad = await post(mail_node.url, "/api/v1/login", {**S1, "otp": bad_code})
        assert bad.status == 401 and bad.body["error"]["code"] == "invalid_credentials"
    # The right password with a code of the next step (the confirm spent this one).
    code = totp.at(time.time() + 30)
    right = await post(mail_node.url, "/api/v1/login", {**S1, "otp": code})
    assert right.status == 200, right.body
    monitor_token = str(right.body["token"])
    async with ProtocolClient(mail_node.url, monitor_token, "S1") as monitor:
        assert (await monitor.request("monitor.calls"))["calls"] == []
    # A code signs in once.
    replay = await post(mail_node.url, "/api/v1/login", {**S1, "otp": code})
    assert replay.status == 401 and replay.body["error"]["code"] == "invalid_credentials"
    # A wrong password with the right code is just wrong (never otp_required first).
    wrong_pw = await post(
        mail_node.url, "/api/v1/login", {**S1, "password": "not the password", "otp": totp.now()}
    )
    assert wrong_pw.status == 401 and wrong_pw.body["error"]["code"] == "invalid_credentials"


async def test_wrong_unknown_and_passwordless_staff_get_the_same_answer(
    mail_node: Node,
) -> None:
    bodies = []
    for attempt in [
        {**S1, "password": "not the password"},
        {"staff_id": "NOBODY", "password": "whatever it is"},
        {"staff_id": "I1", "password": "whatever it is"},  # seeded without a password
    ]:
        answer = await post(mail_node.url, "/api/v1/login", attempt)
        assert answer.status == 401
        bodies.append(answer.body)
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["error"]["code"] == "invalid_credentials"


async def test_an_admin_signs_in_as_admin(mail_node: Node) -> None:
    answer = await post(
        mail_node.url, "/api/v1/login", {"staff_id": "A1", "password": SIGN_IN["A1"]["password"]}
    )
    assert answer.status == 200
    assert (answer.body["role"], answer.body["subject"]) == ("admin", "A1")
    facilities = await get(mail_node.url, "/api/v1/facilities", str(answer.body["token"]))
    assert facilities.status == 200


async def test_enrolment_is_for_known_staff_only(mail_node: Node, tokens: Tokens) -> None:
    for role, subject in [("family", "F1"), ("tablet", "R1"), ("device", "SQ")]:
        answer = await post(
            mail_node.url, "/api/v1/account/staff/otp", token=tokens.issue(role, subject)
        )
        assert answer.status == 403, (role, answer.body)
    stranger = tokens.issue("monitor", "S404")
    answer = await post(mail_node.url, "/api/v1/account/staff/otp", token=stranger)
    assert answer.status == 403
    nothing = await post(
        mail_node.url,
        "/api/v1/account/staff/otp/confirm",
        {"otp": "123456"},
        token=tokens.issue("investigator", "I1"),
    )
    assert nothing.status == 409 and nothing.body["error"]["code"] == "invalid_state"


async def test_a_new_enrolment_keeps_the_old_factor_until_confirmed(
    mail_node: Node, tokens: Tokens
) -> None:
    token = tokens.issue("monitor", "S1")
    first = await enrol(mail_node, token)
    await post(
        mail_node.url, "/api/v1/account/staff/otp/confirm", {"otp": first.now()}, token=token
    )
    second = await enrol(mail_node, token)
    assert base64.b32decode(second.secret) != base64.b32decode(first.secret)
    code = first.at(time.time() + 30)
    assert (await post(mail_node.url, "/api/v1/login", {**S1, "otp": code})).status == 200


async def enrolled(node: Node) -> pyotp.TOTP:
    signed = await post(node.url, "/api/v1/login", S1)
    token = str(signed.body["token"])
    totp = await enrol(node, token)
    confirmed = await post(
        node.url, "/api/v1/account/staff/otp/confirm", {"otp": totp.now()}, token=token
    )
    assert confirmed.status == 200, confirmed.body
    return totp


async def test_the_seed_is_sealed_in_redis_and_only_opens_for_its_owner(
    mail_node: Node, redis: Redis
) -> None:
    """A copy of the database gives no second factor away: the seed is stored sealed, and a
    sealed seed copied onto another staff member's record does not sign that one in."""
    totp = await enrolled(mail_node)
    stored = await redis.hgetall(LOGIN_STAFF("S1"))
    seed = totp.secret.encode()
    assert stored[b"totp"].startswith(b"v1.") and all(seed not in v for v in stored.values())
    assert base64.b32decode(seed) not in b"".join(stored.values())
    code = totp.at(time.time() + 30)  # the next step (confirming used this one)
    signed = await post(mail_node.url, "/api/v1/login", {**S1, "otp": code})
    assert signed.status == 200, signed.body

    await redis.hset(LOGIN_STAFF("A1"), "totp", stored[b"totp"])  # S1's seed onto A1
    a1 = {"staff_id": "A1", "password": SIGN_IN["A1"]["password"], "otp": totp.now()}
    moved = await post(mail_node.url, "/api/v1/login", a1)
    assert moved.status == 401 and moved.body["error"]["code"] == "invalid_credentials"


async def test_a_seed_stored_before_sealing_still_signs_in_and_is_sealed_then(
    mail_node: Node, redis: Redis
) -> None:
    seed = pyotp.random_base32()
    await redis.hset(LOGIN_STAFF("S1"), "totp", seed)  # as the code before sealing wrote it
    signed = await post(mail_node.url, "/api/v1/login", {**S1, "otp": pyotp.TOTP(seed).now()})
    assert signed.status == 200, signed.body
    stored = await redis.hget(LOGIN_STAFF("S1"), "totp")
    assert stored is not None and stored.startswith(b"v1.") and seed.encode() not in stored
    again = pyotp.TOTP(seed).at(time.time() + 30)  # the next step: a code signs in once
    assert (await post(mail_node.url, "/api/v1/login", {**S1, "otp": again})).status == 200
