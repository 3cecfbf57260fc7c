"""The compiled sender's fallback carries a whole call: a worker started with
``VISITATION_PURE_PYTHON=1`` (as where no C compiler built :mod:`rtpkit._srtpsend`) forwards
both parties' media through the pure-Python outlet. Real worker process, Redis and peers."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from client.peer import PartyPeer as Client
from media.control import SfuControl
from media.pool import WorkerPool
from tests.system.media.peers import BLUE, RED, see_each_other
from tests.system.media.test_worker import FAST, close_clients, join


async def test_a_worker_on_the_pure_python_send_path_forwards_a_call(
    redis_url: str, redis: Redis
) -> None:
    control = SfuControl(redis, timeout_s=10)
    workers = WorkerPool(
        redis_url, log_level="WARNING", extra_args=FAST, env={"VISITATION_PURE_PYTHON": "1"}
    )
    try:
        [worker_id] = await workers.start(1)
        await workers.wait_ready(redis)
        tablet, family = Client(RED), Client(BLUE)
        await control.open_call("P1", media_timeout_s=10, worker_id=worker_id)
        try:
            await asyncio.gather(
                join(control, "P1", "tablet", tablet), join(control, "P1", "family", family)
            )
            await see_each_other(tablet, family, decoded=10)
            stats = await control.stats(worker_id)
            assert stats["compiled_send"] is False
            assert stats["rooms"]["P1"]["forwarded"] > 0
        finally:
            await close_clients(tablet.pc, family.pc)
            await control.close_call("P1")
    finally:
        await workers.stop(timeout_s=5)
