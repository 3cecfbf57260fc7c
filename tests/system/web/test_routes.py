"""``add_page_routes``: the pages, their security headers and the static files."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.page_client import PageClient, page_client
from web import PAGES, page_url


@pytest.fixture
async def http() -> AsyncIterator[PageClient]:
    async with page_client() as client:
        yield client


async def test_pages_are_served_with_a_strict_policy(
    http: PageClient,
) -> None:
    for path in PAGES:
        response = await http.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert response.headers["Referrer-Policy"] == "no-referrer"
    body = await (await http.get("/family")).text()
    assert '<script src="/static/vendor/socket.io.min.js"></script>' in body


async def test_static_files_and_no_escape(http: PageClient) -> None:
    for path, kind in [
        ("/static/js/family.js", "javascript"),  # ES modules need a JavaScript MIME type
        ("/static/vendor/socket.io.min.js", "javascript"),
        ("/static/style.css", "text/css"),
    ]:
        response = await http.get(path)
        assert response.status == 200, path
        assert kind in response.content_type
    assert "Socket.IO v4.8.4" in await (await http.get("/static/vendor/socket.io.min.js")).text()
    for path in ("/static/../__init__.py", "/static/%2e%2e/__init__.py", "/investigate"):
        assert (await http.get(path)).status in (403, 404), path


async def test_the_media_service_worker(http: PageClient) -> None:
    # Served from the root, so that it may control /investigator; a script, never cached stale.
    response = await http.get("/media-sw.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Authorization" in await response.text()
    body = await (await http.get("/investigator")).text()
    assert '<script type="module" src="/static/js/investigator.js"></script>' in body


def test_page_url_for_demo_tokens() -> None:
    assert (
        page_url("http://127.0.0.1:8080/", "family", "t") == "http://127.0.0.1:8080/family?token=t"
    )
    assert page_url("http://h", "tablet", "t") == "http://h/tablet?token=t"
    assert page_url("http://h", "monitor", "t") == "http://h/monitor?token=t"
    assert page_url("http://h", "investigator", "t") == "http://h/investigator?token=t"
    assert page_url("http://h", "admin", "t") == "http://h/admin?token=t"
    assert page_url("http://h", "nobody", "t") is None
