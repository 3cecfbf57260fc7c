"""Findings 5 and 8 (Socket.IO): reserved event names never reach the server's own handlers;
malformed frames are one warning line each, never an error with a stack trace."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from redis.asyncio import Redis

from core.tokens import Tokens
from tests.conftest import Node
from tests.system.security.conftest import RawSocket


async def test_a_client_cannot_fire_disconnect(node: Node, tokens: Tokens, redis: Redis) -> None:
    raw = await RawSocket.open(node.url, tokens.issue("family", "F1"))
    try:
        await raw.send('42["disconnect"]')
        refused = await raw.call("disconnect", "transport close")
        assert refused["ok"] is False and refused["error"]["code"] == "invalid_request"
        info = await raw.call("session.info", {})
        assert info["ok"] is True and (info["role"], info["id"]) == ("family", "F1")
        assert await redis.zcard("presence:family:F1") == 1  # still present, still in its rooms
    finally:
        await raw.close()


async def test_a_client_cannot_sign_in_again_as_someone_else(node: Node, tokens: Tokens) -> None:
    raw = await RawSocket.open(node.url, tokens.issue("family", "F1"))
    try:
        other = {"token": tokens.issue("tablet", "R1")}
        for name in ("connect", "connect_error", "disconnecting"):
            refused = await raw.call(name, {"REMOTE_ADDR": "x"}, other)
            assert refused["ok"] is False and refused["error"]["code"] == "invalid_request"
        info = await raw.call("session.info", {})
        assert (info["role"], info["id"]) == ("family", "F1")
        ack = await raw.call("call.place", {"contact_id": "F1"})
        assert ack["error"]["code"] == "forbidden"  # still a family, never a tablet
    finally:
        await raw.close()


NESTED = "[" * 8000 + "]" * 8000
#: Socket.IO packets that are broken: the connection stays and keeps working.
BROKEN_PACKETS = [
    "42[",
    "42" + NESTED,
    '42{"a": 1}',
    '42"a string"',
    "42[]",
    "42[1]",
    "42[null]",
    "43abc",
    "40{",
    "44",
    "4x",
    "4",
]
#: Frames that are not Engine.IO at all: the connection is closed.
NOT_ENGINEIO = ["x", "", "9", "{}"]


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records at ERROR or above, or with a traceback, or over one line."""
    return [
        f"{r.levelname} {r.name}: {r.getMessage()[:200]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or "\n" in r.getMessage()
    ]


async def test_broken_packets_are_one_warning_each(
    node: Node, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    raw = await RawSocket.open(node.url, tokens.issue("family", "F1"))
    try:
        for frame in BROKEN_PACKETS:
            await raw.send(frame)
            ack = await raw.call("session.info", {})  # the connection still works
            assert ack["ok"] is True, frame[:40]
    finally:
        await raw.close()
    assert loud(caplog) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(BROKEN_PACKETS)


@pytest.mark.parametrize("frame", NOT_ENGINEIO, ids=repr)
async def test_a_frame_that_is_not_engineio_closes_its_connection_quietly(
    node: Node, tokens: Tokens, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    caplog.set_level(logging.INFO)
    raw = await RawSocket.open(node.url, tokens.issue("family", "F1"))
    try:
        await raw.send(frame)
        with pytest.raises(ConnectionError):
            await raw.call("session.info", {})
    finally:
        await raw.close()
    assert loud(caplog) == []
    again = await RawSocket.open(node.url, tokens.issue("family", "F1"))  # the server is fine
    assert (await again.call("session.info", {}))["ok"] is True
    await again.close()


async def test_broken_polling_posts_are_one_warning_each(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession(base_url=node.url) as http:
        async with http.get("/socket.io/?EIO=4&transport=polling") as response:
            opened = await response.text()
        sid = json.loads(opened[1:])["sid"]
        for body in ["x", "9", "42" + NESTED, "\x1e\x1e"]:
            url = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
            async with http.post(url, data=body) as response:
                assert response.status < 500
    assert loud(caplog) == []
