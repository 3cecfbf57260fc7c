"""A billing-webhook receiver the suite runs, stops and restarts on the same loopback port.

It checks each POST's ``X-Visitation-Signature`` (:func:`billing_hooks.outbox.verify_signature`)
and counts events by id; a badly signed one is refused with 401 and counted apart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from types import TracebackType

from aiohttp import web

from billing_hooks.outbox import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from core.embedded_redis import _free_port


class WebhookReceiver:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/billing"
        self.received: Counter[str] = Counter()  # event id -> deliveries
        self.types: dict[str, str] = {}
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        event = json.loads(body)
        event_id = str(event.get("id") or request.headers.get(EVENT_ID_HEADER))
        self.received[event_id] += 1
        self.types[event_id] = str(event.get("type"))
        self._arrived.set()
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/billing", self._post)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def stop(self) -> None:
        """Down: the port refuses connections until :meth:`start`."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def wait_for(self, ids: set[str], timeout_s: float) -> bool:
        """Until every id in ``ids`` was delivered; False at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._arrived.clear()
            if ids <= set(self.received):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return ids <= set(self.received)
