"""Browser clients: the family app, the resident tablet, the monitoring console and the
investigator's recordings page, the facility administrator's console.

Plain HTML/CSS/ES modules (no build step) that speak only the public protocol (PROTOCOL.md:
Socket.IO events and the HTTP API). :func:`add_page_routes` mounts them on the signaling
node's aiohttp app, before it starts:

- ``/`` (index), ``/family``, ``/tablet``, ``/monitor``, ``/investigator``, ``/admin`` — the pages; each
  takes ``?token=``;
- ``/media-sw.js`` — the investigator page's service worker (it adds the page's token to the
  ``<video>``'s Range requests); served from the root so that it may control ``/investigator``;
- ``/family-sw.js`` — the family app's service worker (Web Push notifications, scope ``/family``),
  registered by ``static/js/push.js``; ``/static/family.webmanifest`` (also at
  ``/family.webmanifest``) its web app manifest, with icons under ``/static/icons/``;
- ``/static/...`` — stylesheet, scripts and the vendored Socket.IO client.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

__all__ = ["PAGES", "STATIC_DIR", "add_page_routes", "page_url"]

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
PAGES_DIR = WEB_DIR / "pages"

#: URL path -> HTML file in ``pages/``.
PAGES: dict[str, str] = {
    "/": "index.html",
    "/family": "family.html",
    "/tablet": "tablet.html",
    "/monitor": "monitor.html",
    "/investigator": "investigator.html",
    "/admin": "admin.html",
}

#: Which page a token of each role signs in to.
ROLE_PAGES: dict[str, str] = {
    "family": "/family",
    "tablet": "/tablet",
    "monitor": "/monitor",
    "investigator": "/investigator",
    "admin": "/admin",
}

# The pages load only their own files and talk only to their own origin. Tokens can arrive in
# the URL (?token=), so no referrer ever leaves the page (the scripts also drop it from the URL).
PAGE_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}


# A service worker's script: its own policy (it only fetches from this origin), never cached
# stale (the browser also re-checks it on each registration).
WORKER_HEADERS: dict[str, str] = {
    "Content-Type": "text/javascript; charset=utf-8",
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
MEDIA_WORKER = STATIC_DIR / "js" / "media-sw.js"
FAMILY_WORKER = STATIC_DIR / "js" / "family-sw.js"
FAMILY_MANIFEST = STATIC_DIR / "family.webmanifest"
MANIFEST_TYPE = "application/manifest+json"
# The static route serves the manifest with its own type too (Python's table lacks it).
mimetypes.add_type(MANIFEST_TYPE, ".webmanifest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page(filename: str) -> Handler:
    path = PAGES_DIR / filename

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers=PAGE_HEADERS)

    return handler


async def _media_worker(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(MEDIA_WORKER, headers=WORKER_HEADERS)


async def _family_worker(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(FAMILY_WORKER, headers=WORKER_HEADERS)


async def _family_manifest(request: web.Request) -> web.StreamResponse:
    headers = {"Content-Type": MANIFEST_TYPE, "Cache-Control": "no-cache"}
    return web.FileResponse(FAMILY_MANIFEST, headers=headers)


def add_page_routes(app: web.Application) -> None:
    """Serve the pages and their static assets on ``app`` (call before the app starts)."""
    for url, filename in PAGES.items():
        app.router.add_get(url, _page(filename))
    app.router.add_get("/media-sw.js", _media_worker)
    app.router.add_get("/family-sw.js", _family_worker)
    app.router.add_get("/family.webmanifest", _family_manifest)
    app.router.add_static("/static/", STATIC_DIR)


def page_url(base_url: str, role: str, token: str) -> str | None:
    """The page a ``role`` token signs in to, with the token in the URL (e.g. for ``--demo``)."""
    path = ROLE_PAGES.get(role)
    return None if path is None else f"{base_url.rstrip('/')}{path}?token={token}"
