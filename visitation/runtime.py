"""Process-level tuning for the media processes (SFU workers, the load generator).

CPython's cyclic garbage collector runs a young-generation pass every 700 container
allocations and, now and then, a full pass over every object in the process. A media process
allocates a few small objects per packet, thousands of packets a second, while its heap is
large and long-lived (aiortc, pydantic, PyAV, the peer connections): profiled at 4 calls, a
third of the worker's CPU went to ``gc_collect_main``. :func:`tune_gc` freezes what start-up
created (never scanned again) and makes passes rarer; reference counting still frees almost
everything at once, the collector only has to find cycles, which are rare here.
"""

from __future__ import annotations

import gc
from typing import Final

#: Young-generation threshold (allocations), and how many passes before an older one.
GC_THRESHOLDS: Final = (50_000, 20, 20)


def tune_gc() -> None:
    """Call once start-up is done: collect, freeze the survivors, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
