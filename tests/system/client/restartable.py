"""A signaling node in this process on a fixed port that a test stops and starts again (its
clients see a real server restart: the listening socket gone, then back at the same address)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.embedded_redis import _free_port
from loadtest.in_process import Node, start_node
from tests.conftest import SECRET, TEST_RATE_LIMITS
from visitation.node import SignalingNode


@dataclass
class RestartableNode:
    redis_url: str
    data_dir: Path
    recordings_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=_free_port)
    _running: Node | None = None

    @property
    def node(self) -> SignalingNode | None:
        return self._running.node if self._running is not None else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._running is not None

    async def start(self) -> SignalingNode:
        assert self._running is None, "already running"
        settings = Settings.from_env(
            data_dir=self.data_dir,
            redis_url=self.redis_url,
            port=self.port,
            workers=0,
            recordings_dir=self.recordings_dir,
            **{"rate_limits": TEST_RATE_LIMITS, **self.overrides},
        )
        self._running = await start_node(settings, self.redis_url, SECRET)
        return self._running.node

    async def stop(self) -> None:
        """A graceful stop, as ``serve`` does on SIGINT (every client's transport closed)."""
        running, self._running = self._running, None
        if running is not None:
            await running.stop()
