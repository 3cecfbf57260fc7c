"""Background work with an explicit lifecycle (start, stop, log unexpected errors), one helper for
the whole server: :class:`Periodic` for a step repeated on an interval, :class:`TaskPool` for
tasks spawned as work arrives (optionally at most ``limit`` at once), and :func:`cancel_task`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_task(task: asyncio.Task[Any], grace_s: float = 1.0) -> None:
    """Cancel ``task`` until it is done (a library may swallow one cancel); log its error."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=grace_s)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s exited with an error", task.get_name(), exc_info=task.exception())


class Periodic:
    """Runs ``step`` every ``interval_s`` until stopped; an error in one step is logged, not fatal.

    ``stop`` sets a flag as well as cancelling: a library that swallows a ``CancelledError``
    mid-call cannot keep the loop alive.
    """

    def __init__(
        self, name: str, step: Callable[[], Awaitable[object]], interval_s: float, delay_first: bool
    ) -> None:
        self.name = name
        self._step = step
        self._interval = interval_s
        self._delay_first = delay_first
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        await cancel_task(task)

    async def _run(self) -> None:
        if self._delay_first:
            await asyncio.sleep(self._interval)
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: step failed", self.name)
            await asyncio.sleep(self._interval)


Work = Callable[[], Awaitable[object]]


class TaskPool:
    """Background tasks of one kind, at most ``limit`` of them running at once (None: no limit).

    :meth:`spawn` never waits: the task is created at once and waits for a slot itself, so a
    caller (a Socket.IO handler, a timer) is never held up by work already running. Callers
    that pull work from a queue (timers, streams) take no more than :attr:`free` items.
    """

    def __init__(self, name: str, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("a task pool needs at least one slot")
        self.name = name
        self.limit = limit
        self._slots = asyncio.Semaphore(limit) if limit is not None else None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def free(self) -> int:
        """Slots neither running nor promised to a spawned task."""
        if self.limit is None:
            return 1 << 30
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
        if self._slots is None:
            await self._work(label, work)
        else:
            async with self._slots:
                await self._work(label, work)

    async def _work(self, label: str, work: Work) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: %s failed", self.name, label)
