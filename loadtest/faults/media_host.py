"""Another machine for an SFU worker: a network namespace joined to this one by a veth pair.

::

    this host 10.203.x.y+1 (Redis, the S3 server, signaling nodes, clients)
        │ veth (a /30 of 10.203.0.0/16 picked by pid)
    media host 10.203.x.y+2 (the worker: its own network stack, loopback and addresses)

The worker reaches Redis and the object store only over that link, as a worker on another
machine would, and the clients reach its media there. :meth:`MediaHost.lose` is the host going
away: the worker SIGKILLed and the cable pulled. Needs root (``ip netns``); everything it makes
is removed by :meth:`MediaHost.destroy`, and a host left behind by a killed run is removed
before the next one is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from loadtest.netns import delete_namespace, remove_stale, sh

PREFIX = "vfh"  # namespaces "vfh<pid>", their veth's root end too


def _subnet() -> int:
    """A /30 of 10.203.0.0/16 of this process's own (two runs at once do not collide)."""
    return os.getpid() % (1 << 14)


@dataclass
class MediaHost:
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    made: bool = False
    subnet: int = field(default_factory=_subnet)

    @property
    def local(self) -> str:
        """This host's end of the link (where Redis and the S3 server also listen)."""
        return f"10.203.{self.subnet >> 6}.{(self.subnet & 63) * 4 + 1}"

    @property
    def remote(self) -> str:
        """The media host's address."""
        return f"10.203.{self.subnet >> 6}.{(self.subnet & 63) * 4 + 2}"

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def create(self) -> MediaHost:
        remove_stale(PREFIX)
        delete_namespace(self.name)
        try:
            sh("ip", "netns", "add", self.name)
            self.made = True
            sh("ip", "-n", self.name, "link", "set", "lo", "up")
            sh("ip", "link", "add", self.name, "type", "veth",
                "peer", "name", "eth0", "netns", self.name)  # fmt: skip
            sh("ip", "addr", "add", f"{self.local}/30", "dev", self.name)
            sh("ip", "link", "set", self.name, "up")
            sh("ip", "-n", self.name, "addr", "add", f"{self.remote}/30", "dev", "eth0")
            sh("ip", "-n", self.name, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def unplug(self) -> None:
        """Nothing in or out any more (a pulled cable, a dead switch port)."""
        sh("ip", "-n", self.name, "link", "set", "eth0", "down", check=False)

    def destroy(self) -> None:
        if self.made:
            delete_namespace(self.name)
            self.made = False
