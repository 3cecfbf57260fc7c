"""A worker's heartbeat that a busy event loop cannot fake or lose.

The alive key used to be refreshed by a task on the worker's event loop: with the machine's
cores oversubscribed, a loop that was still forwarding every packet could miss its 3 s and
have all its calls ended as ``connection_lost``. :class:`HeartbeatThread` refreshes it from a
thread of its own with its own (blocking) Redis connection, so liveness means "the process
runs", and it reports how late the event loop is (``loop_lag_ms``, measured by a 100 ms
ticker on the loop) for admission and metrics instead of dying of it. When given the worker's
metrics (:mod:`media.metrics`), each beat also writes their exposition text to
``sfu:metrics:{worker}`` with the alive key's TTL: signaling nodes serve it from ``/metrics``.

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

from core.redis_pool import connect_sync
from media.control import WorkerStatus
from media.redis_keys import ALIVE, LAST_BEATS, METRICS, WORKERS

log = logging.getLogger(__name__)

TICK_S: Final = 0.1
WINDOW_S: Final = 1.0  # :meth:`LoopLag.recent_max_s` covers the last one to two of these
RETRY_S: Final = 0.2  # the next heartbeat after a failed one
REGISTER_TIMEOUT_S: Final = 15.0  # a worker keeps trying to register this long at start


class LoopLag:
    """How late the event loop runs a callback due every :data:`TICK_S` (read from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._last = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self.max_s = 0.0  # worst lag since the last :meth:`take_max`
        self._window_at = self._last
        self._window_max = 0.0  # worst lag since _window_at
        self._previous_max = 0.0  # worst lag in the window before

    def start(self) -> None:
        self._last = self._window_at = time.monotonic()
        self._handle = self._loop.call_later(TICK_S, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = time.monotonic()
        lag = now - self._last - TICK_S
        self.max_s = max(self.max_s, lag)
        if now - self._window_at >= WINDOW_S:
            self._previous_max, self._window_max, self._window_at = self._window_max, 0.0, now
        self._window_max = max(self._window_max, lag)
        self._last = now
        self._handle = self._loop.call_later(TICK_S, self._tick)

    def current_s(self) -> float:
        """Lag right now: a loop that has not ticked for a while is that late."""
        return max(0.0, time.monotonic() - self._last - TICK_S)

    def take_max(self) -> float:
        worst, self.max_s = max(self.max_s, self.current_s()), 0.0
        return worst

    def recent_max_s(self) -> float:
        """Worst lag over the last one to two :data:`WINDOW_S`, lateness right now included.

        Unlike :meth:`take_max` it resets nothing, so any number of readers (metrics) can
        look without stealing the worst value from admission."""
        return max(self._previous_max, self._window_max, self.current_s())


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
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.worker_id = worker_id
        # Behind Sentinel this client asks the Sentinels for the master on every reconnect.
        self._redis = connect_sync(redis_url, socket_timeout=max(1.0, interval_s))
        self._status = status
        self._interval = interval_s
        self._ttl_ms = alive_ttl_ms
        self._on_fenced = on_fenced
        self._parent_pid = parent_pid
        self._on_orphaned = on_orphaned
        self._metrics = metrics  # the exposition text, produced in this thread
        self._metrics_failing = False
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.beats = 0
        self.failures = 0

    def beat(self) -> bool:
        """One heartbeat (blocking); True if the worker was not registered before it."""
        status = self._status().model_dump_json()
        metrics = self._exposition()
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(ALIVE(self.worker_id), status, px=self._ttl_ms)
            pipe.sadd(WORKERS(), self.worker_id)
            pipe.hset(LAST_BEATS(), self.worker_id, repr(time.time()))
            if metrics is not None:
                pipe.set(METRICS(self.worker_id), metrics, px=self._ttl_ms)
            added = pipe.execute()[1]
        registered_now = bool(added)
        if registered_now and self.beats and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_fenced)
        self.beats += 1
        return registered_now

    def register(self, timeout_s: float = REGISTER_TIMEOUT_S) -> None:
        """The first heartbeat (blocking), retried until ``timeout_s``: a Redis slow to answer
        at start (a busy machine, fsync on every write, a failover) delays the worker's start
        instead of failing it. Raises the last error past the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.beat()
                return
            except (redis.RedisError, OSError) as exc:
                if time.monotonic() + RETRY_S > deadline:
                    raise
                log.warning("sfu worker %s: registering failed (%s); again", self.worker_id, exc)
                time.sleep(RETRY_S)

    def _exposition(self) -> bytes | None:
        """The metrics text, or None: broken metrics must never stop the heartbeat."""
        if self._metrics is None:
            return None
        try:
            text = self._metrics()
        except Exception:
            if not self._metrics_failing:  # once per streak, not every second
                log.exception("sfu worker %s: collecting metrics failed", self.worker_id)
            self._metrics_failing = True
            return None
        self._metrics_failing = False
        return text

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        # After a failed beat (Redis restarting, a Sentinel failover) the next comes sooner, so
        # the alive key is back moments after Redis answers again, before it can look expired.
        pause, streak = self._interval, 0
        while not self._stop.wait(pause):
            if self._parent_pid is not None and os.getppid() != self._parent_pid:
                log.warning("sfu worker %s: parent process gone", self.worker_id)
                if self._loop is not None and self._on_orphaned is not None:
                    self._loop.call_soon_threadsafe(self._on_orphaned)
                return
            pause = min(self._interval, RETRY_S)
            try:
                self.beat()
                pause = self._interval
                if streak:
                    log.warning("sfu worker %s: heartbeat back after %d failures", self.worker_id,
                                streak)  # fmt: skip
                streak = 0
            except (redis.RedisError, OSError) as exc:
                self.failures += 1
                streak += 1
                if streak == 1:  # once per outage, not five times a second
                    log.warning("sfu worker %s: heartbeat failed: %s", self.worker_id, exc)
            except Exception:
                log.exception("sfu worker %s: heartbeat failed", self.worker_id)

    def stop(self) -> None:
        """Stop beating (blocking: joins the thread), withdraw the metrics, close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5)
        if self._metrics is not None:
            try:
                self._redis.delete(METRICS(self.worker_id))
            except (redis.RedisError, OSError) as exc:  # it expires with the alive TTL anyway
                log.warning("sfu worker %s: withdrawing metrics failed: %s", self.worker_id, exc)
        self._redis.close()
