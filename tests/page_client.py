"""An HTTP client for the pages alone (``add_page_routes`` on an app of their own): what the
page, static-file and installable-app tests request from."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from web import add_page_routes

PageClient = TestClient[web.Request, web.Application]


@contextlib.asynccontextmanager
async def page_client() -> AsyncIterator[PageClient]:
    app = web.Application()
    add_page_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield client
