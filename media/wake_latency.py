"""A limit on how deeply idle CPUs sleep, held for a process's lifetime (Linux PM QoS).

A media worker is idle between packets most of the time at low load, and an idle CPU that
halts pays on the next packet: on a 2-core Firecracker VM (cpuidle ``haltpoll``, guest halt
polling off) the same Python work per packet cost 2-4x as much as while idle CPUs polled
(``python -m loadtest.wakeups``; figures in the README's "Benchmark"). The worker's CPU per
call therefore fell with load, from 4 to 25 calls by up to half, not because forwarding got
cheaper but because the core slept less often. Deployments that dedicate cores to media
(tuned's ``latency-performance`` profile does the same) keep idle CPUs shallow.

While a process holds ``/dev/cpu_dma_latency`` open with a value written, the kernel keeps
every CPU out of idle states whose exit latency exceeds it (0: idle CPUs poll, which costs
power, not this process's CPU time). Closing the file, or the process dying in any way,
releases the limit: nothing is left behind. Needs root (``CAP_SYS_ADMIN`` on most systems).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

log = logging.getLogger(__name__)

DEVICE: Final = Path("/dev/cpu_dma_latency")
MAX_US: Final = 2_000_000_000  # the kernel's default: no limit


def parse_us(text: str) -> int:
    """A limit in microseconds, 0 to 2,000,000,000 (for ``argparse``)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number of microseconds: {text!r}") from None
    return _checked(value)


def _checked(us: int) -> int:
    if not 0 <= us <= MAX_US:
        raise ValueError(f"a wake-up latency limit is 0 to {MAX_US} us, not {us}")
    return us


def current_limit_us(device: Path = DEVICE) -> int:
    """The limit in force on the machine now (the strictest one any process holds)."""
    with device.open("rb") as file:
        (value,) = struct.unpack("i", file.read(4))
    return int(value)


class WakeLatencyLimit:
    """Holds a limit of ``us`` microseconds until :meth:`close` (or the process's end)."""

    def __init__(self, us: int, device: Path = DEVICE) -> None:
        self.us = _checked(us)
        self.device = device
        self._fd: int | None = os.open(device, os.O_WRONLY | os.O_CLOEXEC)  # OSError if not
        try:
            os.write(self._fd, struct.pack("i", us))
        except OSError:
            self.close()
            raise

    @property
    def held(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WakeLatencyLimit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def held(us: int | None, device: Path = DEVICE) -> Iterator[WakeLatencyLimit | None]:
    """Holds ``us`` while the block runs (None: nothing asked for). Where the machine refuses
    it, a warning and None: a tuning never stops the program."""
    if us is None:
        yield None
        return
    try:
        limit = WakeLatencyLimit(us, device)
    except OSError as exc:
        log.warning(
            "cannot limit CPU wake-up latency to %d us (%s); idle CPUs may halt between packets",
            us,
            exc,
        )
        yield None
        return
    log.info("idle CPUs wake within %d us while this process runs", us)
    with limit:
        yield limit
