"""Issue 31 §1.4: what aiohttp refuses before the app sees a request (a header over 8 KiB, NUL
in a header, ``Content-Length: -1``, Content-Length with Transfer-Encoding, bytes that are no
HTTP) answers the JSON error shape, quotes nothing of the input, and names no software.

Raw sockets against a real node served by :func:`core.http_guard.runner`, and against a real
``visitation serve`` process (which serves with it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from core import http_guard
from core.config import Settings
from core.domain import SeedFile
from core.embedded_redis import _free_port
from loadtest.processes import ServeProcess
from tests.conftest import SECRET, TEST_RATE_LIMITS
from tests.system.security.test_http_hostile import json_error
from visitation.node import SignalingNode

MARK = "ECHOME"
HEAD = "Host: 127.0.0.1\r\n"

REQUESTS: dict[str, bytes] = {
    "header_over_8k": (
        f"GET /healthz HTTP/1.1\r\n{HEAD}X-Big: {MARK}{'A' * 9000}\r\n\r\n"
    ).encode(),
    "header_line_of_9k_names": (
        f"GET /healthz HTTP/1.1\r\n{HEAD}{MARK}{'B' * 9000}: 1\r\n\r\n"
    ).encode(),
    "request_line_over_8k": f"GET /{MARK}{'C' * 9000} HTTP/1.1\r\n{HEAD}\r\n".encode(),
    "nul_in_a_header": f"GET /healthz HTTP/1.1\r\n{HEAD}X-Evil: a\x00{MARK}\r\n\r\n".encode(),
    "nul_in_a_header_name": f"GET /healthz HTTP/1.1\r\n{HEAD}X-{MARK}\x00: 1\r\n\r\n".encode(),
    "content_length_minus_one": (
        f"POST /api/v1/login HTTP/1.1\r\n{HEAD}Content-Length: -1\r\nX-M: {MARK}\r\n\r\n"
    ).encode(),
    "content_length_garbage": (
        f"POST /api/v1/login HTTP/1.1\r\n{HEAD}Content-Length: 1{MARK}\r\n\r\n"
    ).encode(),
    "content_length_with_transfer_encoding": (
        f"POST /api/v1/login HTTP/1.1\r\n{HEAD}Content-Length: 5\r\n"
        f"Transfer-Encoding: chunked\r\nX-M: {MARK}\r\n\r\n0\r\n\r\n"
    ).encode(),
    "bad_chunk_size": (
        f"POST /api/v1/login HTTP/1.1\r\n{HEAD}Transfer-Encoding: chunked\r\n\r\n"
        f"{MARK}\r\nxx\r\n0\r\n\r\n"
    ).encode(),
    "no_http_at_all": f"{MARK} {MARK}\r\n\r\n".encode(),
    "bad_method": f"G{MARK}\x01T / HTTP/1.1\r\n{HEAD}\r\n".encode(),
    "bad_version": f"GET / HTTP/{MARK}\r\n{HEAD}\r\n".encode(),
}


@pytest.fixture
async def served(
    redis_url: str, tmp_path: Path, recordings_dir: Path, seeded: SeedFile
) -> AsyncIterator[int]:
    """A real node on a free port, served the way ``visitation serve`` serves it."""
    port = _free_port()
    settings = Settings.from_env(
        data_dir=tmp_path / "var",
        redis_url=redis_url,
        port=port,
        workers=0,
        recordings_dir=recordings_dir,
        rate_limits=TEST_RATE_LIMITS,
    )
    node = SignalingNode(settings, redis_url, SECRET)
    runner = http_guard.runner(node.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read until the server closes (it does, after a refusal): the status,
    headers (lower-case), body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("raw", list(REQUESTS.values()), ids=list(REQUESTS))
async def test_what_aiohttp_refuses_is_a_json_error_that_echoes_nothing(
    served: int, raw: bytes
) -> None:
    status, headers, body = await exchange(served, raw)
    assert 400 <= status < 500, (status, body)
    assert headers["content-type"].startswith("application/json"), (headers, body)
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)
    assert json_error(error, "invalid_request"), error
    answer = json.dumps(headers) + body.decode()
    assert MARK.lower() not in answer.lower(), answer  # nothing of the input comes back
    assert headers["server"] == http_guard.SERVER_HEADER


async def test_the_node_still_answers_after_them(served: int) -> None:
    for raw in REQUESTS.values():
        await exchange(served, raw)
    ok = f"GET /nope HTTP/1.1\r\n{HEAD}Connection: close\r\n\r\n".encode()
    status, _, body = await exchange(served, ok)
    assert status == 404 and json_error(json.loads(body), "not_found")


def test_visitation_serve_answers_them_in_json(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "var", "--workers", "0", env={"REDIS_URL": ""}).wait_ready(30)
    try:
        for name in ("header_over_8k", "nul_in_a_header", "content_length_minus_one",
                     "content_length_with_transfer_encoding", "no_http_at_all"):  # fmt: skip
            status, headers, body = asyncio.run(exchange(proc.port, REQUESTS[name]))
            assert status == 400 and headers["content-type"].startswith("application/json")
            assert json_error(json.loads(body), "invalid_request")
            assert MARK.lower() not in body.decode().lower()
    finally:
        assert proc.terminate() == 0
    output = "".join(proc.output)
    assert "Traceback" not in output
