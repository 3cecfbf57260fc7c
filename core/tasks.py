"""Periodic background work with an explicit lifecycle: start, stop, log unexpected errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


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
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s exited with an error", self.name, exc_info=task.exception())

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
