"""Spawns and stops local SFU worker subprocesses (``python -m visitation.worker``) for ``serve``.

The Redis URL (it may hold a password) goes to the workers through ``REDIS_URL`` in their
environment, not their argv. Each worker gets ``--parent-pid``, so orphaned workers exit by
themselves. Restarting dead workers is not done here: the signaling tier notices them with
:meth:`media.control.SfuControl.dead_workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from redis.asyncio import Redis

from core.spawn import Child, spawn
from media.redis_keys import ALIVE

log = logging.getLogger(__name__)


class WorkerPoolError(RuntimeError):
    """A worker did not come up."""


class WorkerPool:
    def __init__(
        self,
        redis_url: str,
        *,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        id_prefix: str | None = None,
        module: str = "visitation.worker",
        output: IO[bytes] | None = None,
        args_for: Callable[[int], Sequence[str]] | None = None,
        env: Mapping[str, str] | None = None,
        command_prefix: Sequence[str] = (),
        alive: Callable[[str], str] = ALIVE,
        kind: str = "sfu worker",
    ) -> None:
        self.redis_url = redis_url
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.python = python
        self.module = module  # or another worker with the same CLI (the naive benchmark one)
        self.output = output  # where the workers' stdout and stderr go (default: ours)
        self.args_for = args_for  # the n-th spawned worker's own arguments (its port share)
        self.env = dict(env or {})  # e.g. secrets, kept out of argv
        self.command_prefix = list(command_prefix)  # e.g. ["ip", "netns", "exec", NS]
        self.id_prefix = id_prefix or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.processes: dict[str, Child] = {}
        self._spawned = 0
        self._alive = alive  # the Redis key a ready worker keeps alive (its heartbeat)
        self._kind = kind  # what its errors call a worker

    @property
    def worker_ids(self) -> list[str]:
        return list(self.processes)

    async def start(self, n: int) -> list[str]:
        """Spawn ``n`` more workers; returns their ids (see :meth:`wait_ready`)."""
        env = {**os.environ, **self.env, "REDIS_URL": self.redis_url}
        started: list[str] = []
        for _ in range(n):
            worker_id = f"{self.id_prefix}-w{self._spawned}"
            argv = [*self.command_prefix, self.python, "-m", self.module, "--worker-id", worker_id]
            argv += ["--log-level", self.log_level, "--parent-pid", str(os.getpid())]
            if self.args_for is not None:
                argv += self.args_for(self._spawned)
            self._spawned += 1
            process = await spawn(
                [*argv, *self.extra_args], env=env, stdout=self.output, stderr=self.output
            )
            self.processes[worker_id] = process
            started.append(worker_id)
            log.info("spawned sfu worker %s (pid %d)", worker_id, process.pid)
        return started

    async def wait_ready(self, redis: Redis, timeout_s: float = 20.0) -> None:
        """Until every worker has heartbeated; raises if one exits or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        pending = set(self.processes)
        while pending:
            for worker_id in tuple(pending):
                process = self.processes[worker_id]
                if process.returncode is not None:
                    raise WorkerPoolError(f"{self._kind} {worker_id} exited ({process.returncode})")
                if await redis.exists(self._alive(worker_id)):
                    pending.discard(worker_id)
            if pending and time.monotonic() > deadline:
                raise WorkerPoolError(f"{self._kind}s not ready in {timeout_s}s: {sorted(pending)}")
            if pending:
                await asyncio.sleep(0.05)  # nothing to await: readiness is a Redis key

    async def stop(self, timeout_s: float = 10.0) -> dict[str, int | None]:
        """SIGTERM every worker, SIGKILL those still running after ``timeout_s``."""
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(p.wait()) for p in self.processes.values()]
        if waits:
            await asyncio.wait(waits, timeout=timeout_s)
        for worker_id, process in self.processes.items():
            if process.returncode is None:
                log.warning("sfu worker %s ignored SIGTERM; killing it", worker_id)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        codes = {w: p.returncode for w, p in self.processes.items()}
        self.processes.clear()
        return codes
