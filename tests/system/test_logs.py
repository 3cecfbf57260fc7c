"""What is never logged: every secret fed through the real logging setup is gone from the
output, in text and JSON, and a node at INFO logs no Engine.IO packet (so no token, no SDP)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from client.session import ProtocolClient
from core.logs import LogFormat, setup_logging
from core.tokens import Tokens
from tests.conftest import Node

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJGMjAwIiwicm9sZSI6ImZhbWlseSJ9.c2lnbmF0dXJl"
SDP = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB:CD\r\n"
SECRETS = {
    "jwt": JWT,
    "authorization": "Bearer abc.def-opaque-bearer",
    "cookie": "session=s3cr3t-cookie-value",
    "url token": "tok-in-the-url-42",
    "sdp": "a=fingerprint:sha-256 AB:CD",
    "password": "correct horse battery",
    "pin": "482913",
    "otp": "731904",
    "one-time code": "Zq8uN3pW-kLmX2vR",
    "push endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91b",
    "push p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u",
    "push auth": "tBHItJI5svbpez7KI4CCXg",
    "turn user": "1765000000:family:F200",
    "turn credential": "qR3kM9vZ1xYw0nB7cD5e=",
}
LINES = [
    "connect with token %s",
    "headers: Authorization: {authorization}",
    "headers: Cookie: {cookie}",
    "GET /family?token={url token}&x=1 200",
    "Received packet MESSAGE data 0" + json.dumps({"sdp": SDP}),
    "raw offer %s",
    json.dumps({"email": "a@example.org", "password": "{password}"}),
    "form: resident_id=R1&pin={pin}",
    json.dumps({"staff_id": "S1", "otp": "{otp}"}),
    json.dumps({"code": "{one-time code}"}),
    json.dumps({"endpoint": "{push endpoint}", "keys": {"p256dh": "{push p256dh}"}}),
    json.dumps({"keys": {"auth": "{push auth}"}}),
    "sending to {push endpoint}",
    "ice " + json.dumps({"username": "{turn user}", "credential": "{turn credential}"}),
]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_survives_the_logging_setup(fmt: LogFormat, restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging("DEBUG", fmt, stream=out)
    log = logging.getLogger("visitation.test")
    for line in LINES:
        text = line
        for name, value in SECRETS.items():
            text = text.replace("{" + name + "}", value)
        if "%s" in text:
            log.info(text, JWT if "token" in text else SDP)
        else:
            log.info(text)
    try:
        raise RuntimeError(f"failed for {JWT}")
    except RuntimeError:
        log.exception("a traceback with a token in it")
    written = out.getvalue()
    assert written.count("\n") >= len(LINES)
    for name, value in SECRETS.items():
        assert value not in written, (name, written)
    assert "[redacted]" in written
    if fmt == "json":
        for row in written.splitlines():
            record = json.loads(row)
            assert {"timestamp", "level", "logger", "message"} <= set(record)


def test_error_codes_stay_readable(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    logging.getLogger("visitation.test").warning(json.dumps({"error": {"code": "not_found"}}))
    assert '"code": "not_found"' in out.getvalue()


async def test_a_node_at_info_logs_no_packet(
    node: Node, tokens: Tokens, restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISITATION_LOG_PACKETS", raising=False)
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    token = tokens.issue("family", "F1")
    client = ProtocolClient(node.url, token, "F1")
    await client.connect()
    try:
        info = await client.call("session.info", {})
        assert info["ok"], info
    finally:
        await client.close()
    written = out.getvalue()
    assert token not in written
    assert "Received packet" not in written and "Sending packet" not in written
    payload = token.split(".")[1]
    assert payload not in written


async def test_packets_when_asked_for_are_redacted(
    node: Node, tokens: Tokens, restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISITATION_LOG_PACKETS", "1")
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    token = tokens.issue("family", "F1")
    client = ProtocolClient(node.url, token, "F1")
    await client.connect()
    try:
        assert (await client.call("session.info", {}))["ok"]
    finally:
        await client.close()
    written = out.getvalue()
    assert "packet" in written  # Engine.IO's packet lines are there...
    assert token not in written and token.split(".")[1] not in written  # ...without the token
