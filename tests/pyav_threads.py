"""PyAV keeps no video reformatter in a thread's locals while the tests run.

``VideoFrame.reformat`` (and ``to_ndarray(format=...)``) caches a ``VideoReformatter`` per
thread, with swscale slice threads. A child started under uvloop runs CPython's after-fork
handlers before ``exec``; they free the other threads' locals, and freeing a reformatter there
waits in ``pthread_cond_destroy`` for slice threads that do not exist in the child, forever,
while the parent waits in C for the exec. The project's own children start through
``core.spawn`` (no Python after fork), but Playwright starts its driver with
``asyncio.create_subprocess_exec`` on the test's uvloop. So the suite swaps PyAV's cache for
one that keeps nothing: each conversion makes its own reformatter, freed with it.
"""

from __future__ import annotations

from typing import Any

import av.video.frame


class _KeepNothing:
    reformatter = None

    def __setattr__(self, name: str, value: Any) -> None:
        pass  # nothing is cached: the reformatter lives as long as its call


def keep_no_reformatters() -> None:
    """Idempotent; fails loudly if PyAV moved its cache (this guard must then move too)."""
    if not hasattr(av.video.frame, "_thread_local"):
        raise RuntimeError("av.video.frame._thread_local is gone: update tests/pyav_threads.py")
    av.video.frame._thread_local = _KeepNothing()
