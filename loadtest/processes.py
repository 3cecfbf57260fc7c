"""The process harness: the real processes the tests, the fault suite and the benchmark start,
kill and restart, each cleaned up by its owner (in-process nodes: :mod:`loadtest.in_process`;
SFU workers: :class:`media.pool.WorkerPool`).

- :class:`RedisServer`: the embedded Valkey server (AOF on), SIGKILLed and restarted from its
  AOF on the same port and password, so every client reconnects to the same URL;
- :class:`NodeProcess`: a ``visitation serve --workers 0`` signaling node, for asyncio callers
  (the fault suite), its output in a log file;
- :class:`ServeProcess`: a ``visitation serve`` with any flags, for tests, its output kept line
  by line (start-up, shutdown, cluster and hostile-input tests);
- :class:`CpuHogs`: busy-looping processes that take the machine's cores;
- :class:`Tmpfs`: a small filesystem mounted for the recordings (disk-full case; needs root).

Child processes get ``PR_SET_PDEATHSIG`` (SIGKILL) so a suite that dies leaves none behind
(asyncio ones through :func:`core.spawn.spawn`, which runs no Python between fork and exec).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import aiohttp
import redis

from core.embedded_redis import EmbeddedRedis, _free_port, find_redis_server
from core.spawn import STDOUT, Child, spawn

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]  # the project: ServeProcess's PYTHONPATH


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


async def wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not gone(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} still runs after {timeout_s}s")
        await asyncio.sleep(0.02)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


class RedisServer:
    """The embedded Redis of a run directory, which a case may SIGKILL and restart."""

    def __init__(self, root: Path, also_bind: tuple[str, ...] = ()) -> None:
        self.embedded = EmbeddedRedis(root, also_bind=also_bind)
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self.embedded.pid

    async def start(self) -> str:
        self.url = await asyncio.to_thread(self.embedded.start)
        return self.url

    async def kill(self) -> int:
        """SIGKILL (no shutdown, no AOF rewrite): returns the pid that was killed."""
        pid = self.pid
        if pid is None:
            raise RuntimeError("redis is not running")
        os.kill(pid, signal.SIGKILL)
        await wait_gone(pid)
        return pid

    async def restart(self, timeout_s: float = 20.0) -> None:
        """Start the server again from the same config: same port, password, AOF."""
        conf = self.embedded.dir / "redis.conf"
        await asyncio.to_thread(
            subprocess.run, [find_redis_server(), str(conf)], check=True, capture_output=True
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if await asyncio.to_thread(client.ping):
                        return
                except redis.BusyLoadingError:
                    pass  # still replaying the AOF
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis did not come back within {timeout_s}s")
                await asyncio.sleep(0.02)
        finally:
            client.close()

    async def stop(self) -> None:
        await asyncio.to_thread(self.embedded.stop)


class NodeProcess:
    """One ``visitation serve`` signaling node (no workers of its own) on a free port."""

    def __init__(self, name: str, data_dir: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.data_dir = data_dir
        self.env = dict(env)
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Child | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    async def start(self, timeout_s: float = 60.0) -> None:
        argv = ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        argv += ["--workers", "0", "--log-level", self.env.get("VISITATION_LOG_LEVEL", "WARNING")]
        with self.log_path.open("ab") as out:
            self.proc = await spawn(
                [sys.executable, "-m", "visitation.cli", *argv],
                env=self.env,
                stdout=out,
                stderr=STDOUT,
                die_with_parent=True,
            )
        await self._wait_serving(timeout_s)

    async def _wait_serving(self, timeout_s: float) -> None:
        """Until /healthz answers at all (503 without a worker is an answer)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}): {self.tail()}"
                    )
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        await response.read()
                        return
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not serving in {timeout_s}s: {self.tail()}")
                await asyncio.sleep(0.05)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def kill(self) -> None:
        """SIGKILL: no shutdown work at all."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            await self.kill()


class ServeProcess:
    """One ``visitation serve`` subprocess on a free port, its output drained by a thread for
    its whole life (a full pipe would block its logging) and kept. ``REDIS_URL`` is cleared
    (the embedded default) unless ``env`` or ``--redis-url`` names one."""

    def __init__(self, data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        argv = ["serve", "--port", str(self.port), "--data-dir", str(data_dir), *args]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "visitation.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": "", **(env or {})},
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "visitation serving on" in line:
                self.ready.set()

    def wait_ready(self, within_s: float = 60.0) -> ServeProcess:
        """Until it says it serves; killed (and its output raised) if it does not in time."""
        if not self.ready.wait(within_s):
            self.kill()
            raise AssertionError(f"serve not ready within {within_s} s:\n{self.output}")
        return self

    def wait_exit(self, within_s: float) -> int:
        try:
            return self.proc.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"serve still running {within_s} s later:\n{self.output[-3000:]}"
            ) from None

    def healthz(self) -> tuple[int, dict[str, object]]:
        """``/healthz``'s status and body (503 is an answer too)."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def terminate(self, within_s: float = 20.0) -> int:
        """SIGTERM (a graceful shutdown) and its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(within_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


class CpuHogs:
    """``count`` processes that spin (``while True: pass``) until stopped; an async context."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[Child] = []

    async def __aenter__(self) -> CpuHogs:
        for _ in range(self.count):
            proc = await spawn([sys.executable, "-c", "while True: pass"], die_with_parent=True)
            self.procs.append(proc)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self.procs:
            await proc.wait()
        self.procs.clear()


class Tmpfs:
    """A tmpfs of ``size_bytes`` mounted on ``path`` (created if needed), unmounted on exit."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.mounted = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={self.size_bytes}", "tmpfs", str(self.path)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cannot mount a tmpfs (root needed): {done.stderr.strip()}")
        self.mounted = True

    def unmount(self) -> None:
        if not self.mounted:
            return
        done = subprocess.run(["umount", str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:  # a file still open: detach now, freed when closed
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
        self.mounted = False

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes: int, name: str = "filler.bin") -> int:
        """Write a file that leaves about ``leave_bytes`` free; returns its size."""
        size = max(0, self.free_bytes() - leave_bytes)
        chunk = b"\0" * (1 << 20)
        written = 0
        with open(self.path / name, "wb") as fh:
            while written < size:
                written += fh.write(chunk[: min(len(chunk), size - written)])
        return written
