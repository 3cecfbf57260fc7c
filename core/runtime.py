"""Process-level tuning for the media processes (SFU workers, the load generator).

CPython's cyclic garbage collector runs a young-generation pass every 700 container
allocations and, now and then, a full pass over every object in the process. A media process
allocates a few small objects per packet, thousands of packets a second, while its heap is
large and long-lived (aiortc, pydantic, PyAV, the peer connections): profiled at 4 calls, a
third of the worker's CPU went to ``gc_collect_main``. :func:`tune_gc` freezes what start-up
created (never scanned again) and makes passes rarer; reference counting still frees almost
everything at once, the collector only has to find cycles, which are rare here.

Rare, but not absent: a closed call leaves cycles behind (peer connections, transports and
their callbacks refer to each other), and with the raised thresholds the full pass that finds
them almost never comes: a 500-call churn grew a worker by 70 MiB. :class:`CollectAfterCalls`
runs one full pass after calls end, at most every ``min_interval_s``, and hands the freed
pages back to the OS (``malloc_trim``).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _libc_trim()


def _release_free_memory() -> None:
    """Give the heap's free pages back to the OS (glibc keeps them, so a worker's RSS would
    only ever grow with churn, though nothing leaks)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


#: Young-generation threshold (allocations), and how many passes before an older one.
GC_THRESHOLDS: Final = (50_000, 20, 20)


def tune_gc() -> None:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class CollectAfterCalls:
    """One full collection after calls end: at once if the last one is ``min_interval_s``
    old, otherwise when it will be (so a burst of hang-ups costs one pass, and the last call
    of a burst is collected too). Runs on the event loop."""

    def __init__(self, min_interval_s: float = 10.0) -> None:
        self.min_interval_s = min_interval_s
        self._last = time.monotonic()
        self._pending: asyncio.TimerHandle | None = None
        self.collections = 0
        self.last_pause_s = 0.0

    def call_ended(self) -> None:
        if self._pending is not None:
            return  # one pass is already due
        wait = self._last + self.min_interval_s - time.monotonic()
        self._pending = asyncio.get_running_loop().call_later(max(0.0, wait), self._collect)

    def _collect(self) -> None:
        self._pending = None
        started = time.monotonic()
        found = gc.collect()
        _release_free_memory()
        self._last = time.monotonic()
        self.collections += 1
        self.last_pause_s = self._last - started
        if self.last_pause_s > 0.05:
            log.warning("full GC pass: %.0f ms, %d objects freed", 1000 * self.last_pause_s, found)

    def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
