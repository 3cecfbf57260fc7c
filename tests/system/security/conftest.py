"""Security tests: a real node (and one SFU worker, shared by the package), hostile clients.

:class:`RawSocket` speaks Engine.IO/Socket.IO frames over a bare websocket, so a test can send
what no well-behaved client library would (reserved event names, broken packets).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from core.rate_limits import KEY_PREFIX
from tests.conftest import package_sfu_worker, redis_keeping_workers

sfu_worker = package_sfu_worker("sec-sfu")

#: One subject per role in the standard seed (tests/seeds.py).
SUBJECTS: dict[str, str] = {
    "tablet": "R1",
    "family": "F1",
    "monitor": "S1",
    "investigator": "I1",
    "admin": "A1",
    "device": "SQ",  # a shared tablet of a facility (its token's subject is the facility)
}
#: The roles that hold a socket: a device token may only sign residents in over HTTP, and is
#: refused at connect.
SOCKET_SUBJECTS: dict[str, str] = {r: s for r, s in SUBJECTS.items() if r != "device"}


@pytest.fixture
async def redis(redis_url: str, sfu_worker: str) -> AsyncIterator[Redis]:
    """A clean database for each test, keeping the shared worker's registration (``sfu:*``)."""
    async with redis_keeping_workers(redis_url) as client:
        yield client


#: Keys that change without any state changing: counters, liveness, metrics.
VOLATILE = (KEY_PREFIX.encode(), b"presence:", b"sfu:", b"metrics:", b"visitation-dramatiq:")
# (the transcription queue's bookkeeping: a recording sealed before a test enqueues its job in
# the background, and the broker's heartbeats move with every enqueue)
#: Which node works an outbox (mail, push) now: no one's state (``push:outbox:lease``).
LEASE = b":lease"
#: A failed sign-in is counted for the account's lockout (and nothing else changes).
SIGN_IN_FAILURES = b"lockout:"


def settled(snapshot: dict[bytes, Any]) -> dict[bytes, Any]:
    """A :func:`state` but for the failures counted towards sign-in lockouts."""
    return {k: v for k, v in snapshot.items() if not k.startswith(SIGN_IN_FAILURES)}


async def state(redis: Redis) -> dict[bytes, Any]:
    """Every key that holds state (ledger, calls, directory, catalog...) with its value."""
    out: dict[bytes, Any] = {}
    for key in sorted(await redis.keys("*")):
        if key.startswith(VOLATILE) or key.endswith(LEASE):
            continue
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out[key] = await redis.get(key)
        elif kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "set":
            out[key] = sorted(await redis.smembers(key))
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            out[key] = await redis.lrange(key, 0, -1)
        elif kind == "stream":
            out[key] = await redis.xrange(key)
        else:
            out[key] = kind
    return out


class RawSocket:
    """A Socket.IO connection made by hand: ``send`` any frame, ``ack`` waits for an answer."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self._session = session
        self.ws = ws
        self.frames: list[str] = []
        self._next_id = 100

    @classmethod
    async def open(cls, url: str, token: str) -> RawSocket:
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
        raw = cls(session, ws)
        opened = await raw.receive()
        assert opened.startswith("0"), opened
        await ws.send_str("40" + json.dumps({"token": token}))
        connected = await raw.receive()
        assert connected.startswith("40"), connected
        return raw

    async def receive(self, timeout: float = 10.0) -> str:
        """The next Socket.IO frame (answering the server's pings on the way)."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket {message.type.name}")
            frame = str(message.data)
            if frame == "2":
                await self.ws.send_str("3")
                continue
            self.frames.append(frame)
            return frame

    async def send(self, frame: str) -> None:
        await self.ws.send_str(frame)

    async def call(self, event: Any, *args: Any, timeout: float = 10.0) -> Any:
        """Emit ``[event, *args]`` with an ack id; the ack's first item."""
        ack_id = self._next_id
        self._next_id += 1
        await self.send(f"42{ack_id}" + json.dumps([event, *args]))
        return await self.ack(ack_id, timeout)

    async def ack(self, ack_id: int, timeout: float = 10.0) -> Any:
        prefix = f"43{ack_id}"
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.receive(max(0.1, left))
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])[0]

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def close(self) -> None:
        await self.ws.close()
        await self._session.close()
