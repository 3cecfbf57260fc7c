"""The installable family app's files: its service worker, manifest and icons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from tests.page_client import PageClient, page_client
from web import STATIC_DIR


@pytest.fixture
async def http() -> AsyncIterator[PageClient]:
    async with page_client() as client:
        yield client


async def test_the_family_service_worker_is_served_from_the_root(
    http: PageClient,
) -> None:
    response = await http.get("/family-sw.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    text = await response.text()
    assert 'addEventListener("push"' in text and "requireInteraction: true" in text


async def test_the_manifest_and_its_icons(http: PageClient) -> None:
    for path in ("/static/family.webmanifest", "/family.webmanifest"):
        response = await http.get(path)
        assert response.status == 200, path
        assert response.content_type == "application/manifest+json", path
    manifest = json.loads(await (await http.get("/family.webmanifest")).text())
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/family" and manifest["scope"] == "/family"
    assert manifest["theme_color"] == "#1f5fbf"
    assert manifest["name"] and manifest["short_name"]
    sizes = set()
    for icon in manifest["icons"]:
        response = await http.get(icon["src"])
        assert response.status == 200 and response.content_type == "image/png", icon
        path = STATIC_DIR / icon["src"].removeprefix("/static/")
        with Image.open(path) as image:
            assert f"{image.width}x{image.height}" == icon["sizes"]
        sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes
    assert any(icon["purpose"] == "maskable" for icon in manifest["icons"])
