"""The start-up check of the Redis server (:mod:`core.redis_version`), against the real embedded
Valkey and against a tiny fake server on loopback that answers ``INFO server`` as an old or a
crippled Redis would (the one thing a real server cannot be made to say):

- an old line (Redis 6.2.14) is a warning naming the version and the risk, and no refusal;
- a server without ``WAIT`` (as on some managed services) is refused, saying what it is for;
  ``visitation.worker`` and ``visitation serve`` on it exit non-zero with that message;
- Valkey's ``redis_version:7.2.4`` is not taken for its version: ``valkey_version`` is.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.redis_version import (
    REQUIRED_COMMANDS,
    ServerVersion,
    UnsupportedRedis,
    check_server,
    check_url,
)

ROOT = Path(__file__).resolve().parents[2]

OLD_REDIS_INFO = {
    "redis_version": "6.2.14",
    "redis_mode": "standalone",
    "os": "Linux",
    "tcp_port": "6379",
}


@dataclass
class FakeRedis:
    """Answers the few commands a client sends on connecting and the check asks; anything
    else is an unknown command."""

    info: Mapping[str, str]
    lacking: frozenset[str] = frozenset()
    server: asyncio.Server | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                command = await _read_command(reader)
                if command is None:
                    break
                writer.write(self._answer(command))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _answer(self, command: list[str]) -> bytes:
        name = command[0].lower() if command else ""
        if name in self.lacking:
            return f"-ERR unknown command '{name}'\r\n".encode()
        if name in ("auth", "client", "select"):
            return b"+OK\r\n"
        if name == "ping":
            return b"+PONG\r\n"
        if name == "wait":
            return b":0\r\n"
        if name == "info":
            text = "# Server\r\n" + "".join(f"{k}:{v}\r\n" for k, v in self.info.items())
            data = text.encode()
            return b"$%d\r\n%s\r\n" % (len(data), data)
        if name == "command" and len(command) > 1 and command[1].lower() == "info":
            entries = [
                b"*-1\r\n" if asked.lower() in self.lacking else b"*1\r\n" + _bulk(asked.lower())
                for asked in command[2:]
            ]
            return b"*%d\r\n" % len(entries) + b"".join(entries)
        return f"-ERR unknown command '{name}'\r\n".encode()


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


async def _read_command(reader: asyncio.StreamReader) -> list[str] | None:
    header = await reader.readline()
    if not header:
        return None
    if not header.startswith(b"*"):  # an inline command
        return header.decode().split()
    parts = []
    for _ in range(int(header[1:])):
        size = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(size + 2))[:-2].decode())
    return parts


@pytest.fixture
async def fake() -> AsyncIterator[list[FakeRedis]]:
    started: list[FakeRedis] = []
    yield started
    for server in started:
        await server.stop()


async def fake_server(
    started: list[FakeRedis], info: Mapping[str, str], lacking: frozenset[str] = frozenset()
) -> FakeRedis:
    server = FakeRedis(info, lacking)
    await server.start()
    started.append(server)
    return server


async def test_an_old_redis_is_a_warning_naming_its_version_and_the_risk(
    fake: list[FakeRedis], caplog: pytest.LogCaptureFixture
) -> None:
    server = await fake_server(fake, OLD_REDIS_INFO)
    client = Redis.from_url(server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="core.redis_version"):
            version = await check_server(client, "serve")
    finally:
        await client.aclose()
    assert version == ServerVersion("redis", (6, 2, 14)) and not version.supported
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "core.redis_version" and r.levelno == logging.WARNING
    ]
    assert len(warned) == 1, warned
    assert "Redis 6.2.14" in warned[0] and "older than the supported lines" in warned[0]
    assert "Valkey >= 7.2 and Redis >= 7.2" in warned[0] and "CVE-2025-49844" in warned[0]


async def test_a_server_without_wait_is_refused_saying_what_it_is_for(
    fake: list[FakeRedis],
) -> None:
    server = await fake_server(fake, {"redis_version": "7.2.5"}, lacking=frozenset({"wait"}))
    client = Redis.from_url(server.url)
    try:
        with pytest.raises(UnsupportedRedis) as refused:
            await check_server(client)
    finally:
        await client.aclose()
    message = str(refused.value)
    assert "Redis 7.2.5" in message and "does not offer WAIT" in message
    assert REQUIRED_COMMANDS["wait"] in message


async def test_a_server_refusing_command_itself_is_asked_wait(fake: list[FakeRedis]) -> None:
    server = await fake_server(
        fake, {"redis_version": "7.4.1"}, lacking=frozenset({"command", "wait"})
    )
    client = Redis.from_url(server.url)
    try:
        with pytest.raises(UnsupportedRedis, match="does not offer WAIT"):
            await check_server(client)
    finally:
        await client.aclose()
    ok = await fake_server(fake, {"redis_version": "7.4.1"}, lacking=frozenset({"command"}))
    assert await check_url(ok.url) == ServerVersion("redis", (7, 4, 1))


async def test_the_embedded_server_is_a_supported_valkey(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="core.redis_version"):
        version = await check_server(redis)
    assert version.name == "valkey" and version.version >= (8, 1) and version.supported
    assert not [r for r in caplog.records if r.name == "core.redis_version"]


def test_versions_are_read_from_what_redis_py_parses() -> None:
    # redis-py makes "7.2" a float and "7" an int; Valkey says redis_version:7.2.4 as well.
    assert ServerVersion.from_info({"redis_version": 7.2}).version == (7, 2)
    assert ServerVersion.from_info({"redis_version": 7}).supported is False
    valkey = {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.8"}
    assert str(ServerVersion.from_info(valkey)) == "Valkey 8.1.8"
    assert ServerVersion.from_info({"redis_version": "7.2.0"}).supported
    assert not ServerVersion.from_info({"valkey_version": "7.0.9"}).supported
    assert not ServerVersion.from_info({}).supported


async def test_worker_and_serve_refuse_a_server_without_wait(
    fake: list[FakeRedis], tmp_path: Path
) -> None:
    server = await fake_server(fake, {"redis_version": "7.2.5"}, lacking=frozenset({"wait"}))
    runs = {
        "worker": [sys.executable, "-m", "visitation.worker", "--redis-url", server.url],
        "serve": [
            sys.executable,
            "-m",
            "visitation.cli",
            "serve",
            "--workers",
            "0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "var"),
            "--redis-url",
            server.url,
        ],
    }
    for what, argv in runs.items():
        done = await asyncio.to_thread(
            subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0, (what, done.stdout, done.stderr)
        assert "does not offer WAIT" in done.stderr, (what, done.stderr)
