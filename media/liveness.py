"""A worker's heartbeat that a busy event loop cannot fake or lose.

The alive key used to be refreshed by a task on the worker's event loop: with the machine's
cores oversubscribed, a loop that was still forwarding every packet could miss its 3 s and
have all its calls ended as ``connection_lost``. :class:`HeartbeatThread` refreshes it from a
thread of its own with its own (blocking) Redis connection, so liveness means "the process
runs", and it reports how late the event loop is (``loop_lag_ms``, measured by a 100 ms
ticker on the loop) for admission and metrics instead of dying of it.

When a beat finds the worker unregistered although it has already beaten (signaling declared
it dead after a real outage and claimed its calls), ``on_fenced`` is scheduled on the loop:
the worker then stops touching those calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Final

import redis

from media.control import WORKERS_KEY, WorkerStatus, alive_key

log = logging.getLogger(__name__)

TICK_S: Final = 0.1


class LoopLag:
    """How late the event loop runs a callback due every :data:`TICK_S` (read from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._last = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self.max_s = 0.0  # worst lag since the last :meth:`take_max`

    def start(self) -> None:
        self._last = time.monotonic()
        self._handle = self._loop.call_later(TICK_S, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = time.monotonic()
        self.max_s = max(self.max_s, now - self._last - TICK_S)
        self._last = now
        self._handle = self._loop.call_later(TICK_S, self._tick)

    def current_s(self) -> float:
        """Lag right now: a loop that has not ticked for a while is that late."""
        return max(0.0, time.monotonic() - self._last - TICK_S)

    def take_max(self) -> float:
        worst, self.max_s = max(self.max_s, self.current_s()), 0.0
        return worst


class HeartbeatThread:
    """Refreshes ``sfu:alive:{worker}`` every ``interval_s`` from its own thread."""

    def __init__(
        self,
        redis_url: str,
        worker_id: str,
        status: Callable[[], WorkerStatus],
        *,
        interval_s: float,
        alive_ttl_ms: int,
        on_fenced: Callable[[], None],
        parent_pid: int | None = None,
        on_orphaned: Callable[[], None] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=max(1.0, interval_s))
        self._status = status
        self._interval = interval_s
        self._ttl_ms = alive_ttl_ms
        self._on_fenced = on_fenced
        self._parent_pid = parent_pid
        self._on_orphaned = on_orphaned
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.beats = 0
        self.failures = 0

    def beat(self) -> bool:
        """One heartbeat (blocking); True if the worker was not registered before it."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(alive_key(self.worker_id), self._status().model_dump_json(), px=self._ttl_ms)
            pipe.sadd(WORKERS_KEY, self.worker_id)
            _, added = pipe.execute()
        registered_now = bool(added)
        if registered_now and self.beats and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_fenced)
        self.beats += 1
        return registered_now

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._parent_pid is not None and os.getppid() != self._parent_pid:
                log.warning("sfu worker %s: parent process gone", self.worker_id)
                if self._loop is not None and self._on_orphaned is not None:
                    self._loop.call_soon_threadsafe(self._on_orphaned)
                return
            try:
                self.beat()
            except (redis.RedisError, OSError) as exc:
                self.failures += 1
                log.warning("sfu worker %s: heartbeat failed: %s", self.worker_id, exc)
            except Exception:
                log.exception("sfu worker %s: heartbeat failed", self.worker_id)

    def stop(self) -> None:
        """Stop beating (blocking: joins the thread) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5)
        self._redis.close()
