"""A signaling node in this process, on a loopback port: what the tests, the benchmark and the
restartable-node tests run (``visitation serve`` in a subprocess: :mod:`loadtest.processes`).

It is the node ``serve`` runs (:class:`visitation.node.SignalingNode` behind an aiohttp
runner) without the process around it: no workers of its own, no signal handlers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from core.config import Settings
from visitation.node import SignalingNode


@dataclass
class Node:
    node: SignalingNode
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        """A graceful stop, as ``serve`` does on SIGINT (every client's transport closed)."""
        await self.runner.cleanup()
        # python-socketio's Redis listener outlives the app; stop it before Redis goes away.
        listener = getattr(self.node.sio.manager, "thread", None)
        if isinstance(listener, asyncio.Task) and not listener.done():
            listener.cancel()
            await asyncio.wait([listener], timeout=2.0)


async def start_node(
    settings: Settings,
    redis_url: str,
    secret: bytes,
    *,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
) -> Node:
    """Start a node serving on ``host``:``settings.port``."""
    node = SignalingNode(settings, redis_url, secret, clock=clock)
    runner = web.AppRunner(node.app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, settings.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return Node(node, runner, f"http://{host}:{settings.port}")
