"""Spawns and stops local transcription workers (``python -m transcripts.worker``), as
:class:`media.pool.WorkerPool` does SFU workers: for ``visitation serve --transcribers N``.

The Redis URL goes through the environment (``REDIS_URL``), never argv; each worker gets
``--parent-pid`` and exits when its parent is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO

from redis.asyncio import Redis

from core.spawn import Child
from media.pool import WorkerPool
from transcripts.redis_keys import WORKER


class TranscriberPool:
    def __init__(
        self,
        redis_url: str,
        recordings: str,
        *,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        id_prefix: str | None = None,
        output: IO[bytes] | None = None,
    ) -> None:
        self._pool = WorkerPool(
            redis_url,
            log_level=log_level,
            module="transcripts.worker",
            extra_args=["--recordings", recordings, *extra_args],
            env=env,
            id_prefix=id_prefix,
            output=output,
            alive=WORKER,
            kind="transcriber",
        )

    @property
    def processes(self) -> dict[str, Child]:
        return self._pool.processes

    async def start(self, n: int) -> list[str]:
        return await self._pool.start(n)

    async def wait_ready(self, redis: Redis, timeout_s: float = 30.0) -> None:
        """Until every worker has heartbeated; raises if one exits or the timeout passes."""
        await self._pool.wait_ready(redis, timeout_s)

    async def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        return await self._pool.stop(timeout_s)
