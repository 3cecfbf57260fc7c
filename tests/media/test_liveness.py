"""A worker's liveness does not depend on its event loop getting CPU in time."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis
from redis.asyncio import Redis

from media.control import WORKERS_KEY, WorkerStatus, alive_key
from media.liveness import HeartbeatThread, LoopLag


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
        while not watching.is_set():
            if not watcher.exists(alive_key("busy-1")):
                gaps.append(time.strftime("%X"))
            time.sleep(0.02)

    try:
        assert await asyncio.to_thread(beat.beat) is True  # first registration
        lag.start()
        beat.start(loop)
        sampler = threading.Thread(target=watch)
        sampler.start()
        time.sleep(1.5)  # noqa: ASYNC251  # the loop is blocked for three alive TTLs
        deadline = time.monotonic() + 5
        while not lags or max(lags) < 1.0:  # a beat after the block reports the lag
            assert time.monotonic() < deadline, lags
            await asyncio.sleep(0.02)
        watching.set()
        sampler.join()
        assert gaps == []  # never looked dead

        # Declared dead anyway (e.g. after a real outage): the next beat fences the worker.
        await redis.srem(WORKERS_KEY, "busy-1")
        await asyncio.wait_for(fenced.wait(), 5)
    finally:
        watching.set()
        lag.stop()
        await asyncio.to_thread(beat.stop)
        watcher.close()
        await redis.delete(alive_key("busy-1"))
        await redis.srem(WORKERS_KEY, "busy-1")


def redis_lib_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)
