"""The data dir's lock: one ``visitation serve`` with the embedded Redis (or one command owning
that Redis) at a time per data dir.

The holder of the embedded Redis takes it exclusively; serves of an external Redis take it
shared (several nodes may share a data dir: its secret and recordings), so that an embedded
one is refused while they run, and they are refused while it runs.

``DATA_DIR/serve.lock`` is held with ``flock`` for the holder's whole life; the kernel drops it
when the process ends however it ends, so a crashed server never leaves a stale lock. The file
names its holder (``<pid> <what>``) so that the process refused can say who holds it. Its
descriptor is not inherited (Python opens files close-on-exec): the SFU workers and the
daemonized ``redis-server`` never hold it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError

LOCK_FILE = "serve.lock"


class DataDirInUse(ConfigError):
    """Another process holds the data dir's lock."""

    def __init__(self, data_dir: Path, pid: int | None, what: str) -> None:
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"data dir {data_dir} in use by {holder} ({what or 'unknown'})")
        self.pid = pid
        self.what = what


@dataclass
class Holder:
    """Who holds the lock, as its file says."""

    pid: int | None
    what: str

    @classmethod
    def parse(cls, text: str) -> Holder:
        pid, _, what = text.strip().partition(" ")
        return cls(int(pid) if pid.isdigit() else None, what.strip())


@dataclass
class DataDirLock:
    """``flock`` on ``data_dir/serve.lock``; ``what`` names the holder ("serve", "seed" ...)."""

    data_dir: Path
    what: str = "serve"
    clock: Callable[[], float] = time.monotonic
    _fd: int | None = field(default=None, init=False, repr=False)

    @property
    def path(self) -> Path:
        return self.data_dir / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> Holder:
        """What the lock file says (its holder, or the last one)."""
        try:
            return Holder.parse(self.path.read_text())
        except OSError:
            return Holder(None, "")

    def try_acquire(self, *, shared: bool = False) -> bool:
        """Take the lock if it is free (``shared``: unless held exclusively); True if this
        object holds it now."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.what}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire(self, wait_s: float = 0.0, *, shared: bool = False) -> None:
        """Take the lock, or raise :class:`DataDirInUse` naming the holder's pid.

        A holder that is a short command (``seed``, ``revoke``...) is waited for up to
        ``wait_s``; a ``serve`` holder is not waited for."""
        deadline = self.clock() + wait_s
        while not self.try_acquire(shared=shared):
            holder = self.holder()
            if holder.what == "serve" or self.clock() >= deadline:
                raise DataDirInUse(self.data_dir, holder.pid, holder.what)
            time.sleep(0.05)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
