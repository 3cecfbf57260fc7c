"""Child processes for asyncio code, started without running any Python in the child.

uvloop's ``loop.subprocess_exec`` (what ``asyncio.create_subprocess_exec`` is under uvloop)
forks and then runs CPython's after-fork handlers in the child before ``exec``
(MagicStack/uvloop#749), as ``subprocess.Popen(preexec_fn=...)`` does. Those handlers free
the thread states of the parent's other threads, and with them whatever those threads held.
A PyAV video reformatter (its swscale slice threads) freed there waits in
``pthread_cond_destroy`` for threads that do not exist in the child, forever; the parent
waits in C for the child's ``exec``, with its event loop (and SIGALRM) blocked. A signaling
node that restarts an SFU worker after making thumbnails (in executor threads) would hang
like that.

:func:`spawn` starts the child with :class:`subprocess.Popen` and no ``preexec_fn``:
CPython's ``fork_exec`` runs only async-signal-safe C between fork and exec. The returned
:class:`Child` is the part of :class:`asyncio.subprocess.Process` this project uses
(``pid``, ``returncode``, ``wait``, signals, ``stdin``/``stdout`` streams); its exit is
watched through a pidfd on the event loop (a thread where the kernel has no pidfd).
``die_with_parent`` (the kernel SIGKILLs the child when this process's spawning thread
exits) is set by a short trampoline of the same interpreter that then ``exec``s the
command, not by code run after fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

PIPE: Final = subprocess.PIPE
DEVNULL: Final = subprocess.DEVNULL
STDOUT: Final = subprocess.STDOUT

# argv[1] is the parent's pid; the command follows. PR_SET_PDEATHSIG is 1 (linux/prctl.h).
_TRAMPOLINE: Final = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)  # the parent is already gone\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)

Stream = int | IO[Any] | None


class Child:
    """A running child process (see :func:`spawn`)."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader | None,
        *,
        use_pidfd: bool = True,
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdin = stdin
        self.stdout = stdout
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        pidfd = _pidfd(popen.pid) if use_pidfd else None
        if pidfd is not None:
            self._loop.add_reader(pidfd, self._pidfd_readable, pidfd)
        else:
            name = f"wait-{popen.pid}"
            threading.Thread(target=self._wait_in_thread, name=name, daemon=True).start()

    @property
    def returncode(self) -> int | None:
        """The exit status once :meth:`wait` has seen it (``-N`` for signal N), else None."""
        return self._popen.returncode if self._exited.done() else None

    async def wait(self) -> int:
        """Until the child exits; its exit status."""
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        """Signal the child; nothing once it has exited (its pid may be reused)."""
        if self._popen.returncode is None:
            self._popen.send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _pidfd_readable(self, pidfd: int) -> None:
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        self._exit(self._popen.wait())  # it has exited: this reaps it at once

    def _wait_in_thread(self) -> None:
        status = self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody waits
            self._loop.call_soon_threadsafe(self._exit, status)

    def _exit(self, status: int) -> None:
        if not self._exited.done():
            self._exited.set_result(status)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+
        return None


async def spawn(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: Stream = DEVNULL,
    stdout: Stream = None,
    stderr: Stream = None,
    start_new_session: bool = False,
    umask: int = -1,
    die_with_parent: bool = False,
) -> Child:
    """Start ``argv``; ``PIPE`` for ``stdin``/``stdout`` gives asyncio streams."""
    command = [os.fspath(part) for part in argv]
    if not command:
        raise ValueError("spawn: empty argv")
    if die_with_parent:
        command = [sys.executable, "-c", _TRAMPOLINE, str(os.getpid()), *command]
    # Blocks only until the child has exec'd (what uvloop's spawn blocks for too).
    popen = subprocess.Popen(  # noqa: ASYNC220
        command,
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=start_new_session,
        umask=umask,
    )
    try:
        loop = asyncio.get_running_loop()
        writer = reader = None
        if popen.stdin is not None:
            protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())  # flow control
            transport, _ = await loop.connect_write_pipe(lambda: protocol, popen.stdin)
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
        if popen.stdout is not None:
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
        return Child(popen, writer, reader)
    except BaseException:
        popen.kill()
        popen.wait()
        raise
