"""A worker's liveness does not depend on its event loop getting CPU in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time

import redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from media.control import WorkerStatus
from media.liveness import HeartbeatThread, LoopLag
from media.redis_keys import ALIVE, WORKERS
from tests.waiting import eventually


async def test_a_blocked_event_loop_stays_alive_and_reports_its_lag(
    redis_url: str, redis: Redis
) -> None:
    loop = asyncio.get_running_loop()
    lag = LoopLag(loop)
    lags: list[float] = []
    fenced = asyncio.Event()

    def status() -> WorkerStatus:
        lags.append(lag.take_max())
        return WorkerStatus(calls=1, load=1.0, pid=os.getpid(), started_at=time.time())

    beat = HeartbeatThread(
        redis_url, "busy-1", status, interval_s=0.1, alive_ttl_ms=500, on_fenced=fenced.set
    )
    watcher = redis_lib_client(redis_url)
    gaps: list[str] = []
    watching = threading.Event()

    def watch() -> None:  # samples the alive key from outside the loop while it is blocked
        while True:
            if not watcher.exists(ALIVE("busy-1")):
                gaps.append(time.strftime("%X"))
            if watching.wait(0.02):  # a sample every 20 ms until told to stop
                return

    try:
        assert await asyncio.to_thread(beat.beat) is True  # first registration
        lag.start()
        beat.start(loop)
        sampler = threading.Thread(target=watch)
        sampler.start()
        time.sleep(1.5)  # noqa: ASYNC251  # the loop is blocked for three alive TTLs
        # A beat after the block reports the lag.
        await eventually(
            lambda: bool(lags) and max(lags) >= 1.0, lambda: f"lag in {lags}", within_s=5
        )
        watching.set()
        sampler.join()
        assert gaps == []  # never looked dead

        # Declared dead anyway (e.g. after a real outage): the next beat fences the worker.
        await redis.srem(WORKERS(), "busy-1")
        await asyncio.wait_for(fenced.wait(), 5)
    finally:
        watching.set()
        lag.stop()
        await asyncio.to_thread(beat.stop)
        watcher.close()
        await redis.delete(ALIVE("busy-1"))
        await redis.srem(WORKERS(), "busy-1")


def redis_lib_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


async def test_a_worker_registers_even_when_redis_is_slow_to_answer_at_first(
    redis_url: str, redis: Redis
) -> None:
    """The first beat outlasts the heartbeat's socket timeout (writes paused, as when Redis
    fsyncs on a busy machine or fails over): registering tries again instead of failing."""
    status = WorkerStatus(calls=0, load=0.0, pid=os.getpid(), started_at=time.time())
    beat = HeartbeatThread(
        redis_url, "slow-start-1", lambda: status, interval_s=0.2, alive_ttl_ms=2000,
        on_fenced=lambda: None,
    )  # fmt: skip
    try:
        await redis.execute_command("CLIENT", "PAUSE", "2500", "WRITE")  # > the 1 s timeout
        with contextlib.suppress(RedisError):  # what a single try did at start
            beat.beat()
            raise AssertionError("a paused Redis answered a write within the socket timeout")
        await asyncio.to_thread(beat.register, 15.0)
        assert await redis.exists(ALIVE("slow-start-1"))
        assert beat.beats == 1
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await redis.delete(ALIVE("slow-start-1"))
        await redis.srem(WORKERS(), "slow-start-1")
        await asyncio.to_thread(beat.stop)
