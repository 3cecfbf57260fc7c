"""Another machine for an SFU worker: a network namespace joined to this one by a veth pair.

::

    this host 10.203.0.1 (Redis, the S3 server, signaling nodes, clients)
        │ veth
    media host 10.203.0.2 (the worker: its own network stack, loopback and addresses)

The worker reaches Redis and the object store only over that link, as a worker on another
machine would, and the clients reach its media there. :meth:`MediaHost.lose` is the host going
away: the worker SIGKILLed and the cable pulled. Needs root (``ip netns``); everything it makes
is removed by :meth:`MediaHost.destroy`, and a host left behind by a killed run is removed
before the next one is made.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "vfh"  # namespaces "vfh<pid>", their veth's root end too
LOCAL = "10.203.0.1"
REMOTE = "10.203.0.2"


def _sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete(name: str) -> None:
    for pid in _sh("ip", "netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _sh("ip", "netns", "del", name, check=False)  # its veth, and so the root end, go with it


def remove_stale_hosts() -> None:
    for line in _sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        owner = name[len(PREFIX) :]
        if name.startswith(PREFIX) and owner.isdigit() and not _alive(int(owner)):
            _delete(name)


@dataclass
class MediaHost:
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    made: bool = False

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def create(self) -> MediaHost:
        remove_stale_hosts()
        _delete(self.name)
        try:
            _sh("ip", "netns", "add", self.name)
            self.made = True
            _sh("ip", "-n", self.name, "link", "set", "lo", "up")
            _sh("ip", "link", "add", self.name, "type", "veth",
                "peer", "name", "eth0", "netns", self.name)  # fmt: skip
            _sh("ip", "addr", "add", f"{LOCAL}/30", "dev", self.name)
            _sh("ip", "link", "set", self.name, "up")
            _sh("ip", "-n", self.name, "addr", "add", f"{REMOTE}/30", "dev", "eth0")
            _sh("ip", "-n", self.name, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def unplug(self) -> None:
        """Nothing in or out any more (a pulled cable, a dead switch port)."""
        _sh("ip", "-n", self.name, "link", "set", "eth0", "down", check=False)

    def destroy(self) -> None:
        if self.made:
            _delete(self.name)
            self.made = False
