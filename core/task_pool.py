"""Bounded background work with an explicit lifecycle: spawn, run at most ``limit`` at once,
stop (wait a bounded time, then cancel), log unexpected errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[object]]


class TaskPool:
    """Background tasks of one kind, at most ``limit`` of them running at once.

    :meth:`spawn` never waits: the task is created at once and waits for a slot itself, so a
    caller (a Socket.IO handler, a timer) is never held up by work already running. Callers
    that pull work from a queue (timers, streams) take no more than :attr:`free` items.
    """

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError("a task pool needs at least one slot")
        self.name = name
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def free(self) -> int:
        """Slots neither running nor promised to a spawned task."""
        return max(0, self.limit - len(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, label: str, work: Work) -> asyncio.Task[None]:
        if self._closed:
            raise RuntimeError(f"{self.name} is stopped")
        task = asyncio.create_task(self._run(label, work), name=f"{self.name}:{label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_for_slot(self) -> None:
        """Return once :attr:`free` is positive."""
        while not self.free:
            await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    async def join(self) -> None:
        """Wait until every task spawned so far (and any they spawn) has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def stop(self, grace_s: float = 5.0) -> None:
        """Spawn nothing more; let running tasks finish for ``grace_s``, then cancel the rest."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        while self._tasks:
            left = list(self._tasks)
            log.warning("%s: cancelling %d unfinished task(s)", self.name, len(left))
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=1.0)

    async def _run(self, label: str, work: Work) -> None:
        async with self._slots:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.name, label)
