"""The access log of ``visitation serve``'s runner: a line per request with the path, status
and duration, never the query string (pages are opened by ``?token=``) nor a header."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest
from aiohttp import web

from core.embedded_redis import _free_port
from core.logs import LogFormat, setup_logging
from visitation.serve import web_runner

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJGMSJ9.c2lnbmF0dXJlLXNlY3JldA"


async def _page(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_the_access_log_has_no_query_and_no_header(
    fmt: LogFormat, restore_logging: None
) -> None:
    out = io.StringIO()
    setup_logging("INFO", fmt, stream=out)
    app = web.Application()
    app.router.add_get("/family", _page)
    runner = web_runner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/family?token={JWT}&lang=fr"
            headers = {
                "Authorization": "Bearer opaque-bearer-77",
                "Cookie": "sid=cookie-value-88",
                "Referer": f"http://127.0.0.1:{port}/tablet?token={JWT}",
                "User-Agent": "agent-99",
            }
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
            async with http.get(f"http://127.0.0.1:{port}/missing?token=x-tok-55") as response:
                assert response.status == 404
    finally:
        await runner.cleanup()
    written = out.getvalue()
    for secret in (JWT, JWT.split(".")[1], "opaque-bearer-77", "cookie-value-88", "agent-99"):
        assert secret not in written, (secret, written)
    assert "x-tok-55" not in written and "lang=fr" not in written and "?" not in written
    lines = [line for line in written.splitlines() if "aiohttp.access" in line]
    assert len(lines) == 2, written
    if fmt == "json":
        rows = [json.loads(line) for line in lines]
        assert [(r["method"], r["path"], r["status"]) for r in rows] == [
            ("GET", "/family", 200),
            ("GET", "/missing", 404),
        ]
        assert all(r["remote"] == "127.0.0.1" and r["elapsed_s"] >= 0 for r in rows)
        assert all(r["level"] == "INFO" and r["logger"] == "aiohttp.access" for r in rows)
    else:
        assert "GET /family 200 " in lines[0] and "127.0.0.1" in lines[0]
        assert "GET /missing 404 " in lines[1]
