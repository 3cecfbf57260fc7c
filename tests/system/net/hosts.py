"""A data centre of separate hosts in network namespaces, and a family at home behind NAT.

::

    node   10.200.0.2 ─┐                               inet: bridge 198.51.100.1
    worker 10.200.0.3 ─┤ lan bridge ── cloud NAT ── 198.51.100.7 ──┤
    redis  10.200.0.4 ─┤ 10.200.0.1    (tcp 8080 → node,            │
    s3     10.200.0.5 ─┘                udp 40000-40199 → worker)   │
                                 fam wlan 10.201.0.2 ── home NAT ── 198.51.100.20

Each host is a namespace of its own with one interface on the data centre's LAN (a bridge in the
cloud router's namespace): the signaling node reaches Redis and the object store only over that
LAN, the worker too, and neither shares a disk or a loopback with the other. The family reaches
the node's signaling port and the worker's media ports through the cloud NAT, as it would a real
deployment's public address (the worker announces it: ``--announce-ip``).

As in :mod:`tests.system.net.lab`, every address is one the lab creates, no namespace routes anywhere
else, and :meth:`HostsLab.destroy` removes it all (also a lab left behind by a killed run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tests.system.net.lab import (
    FAMILY_WLAN,
    HOME_NAT,
    INTERNET,
    MEDIA_PORTS,
    PREFIX,
    PUBLIC_SERVER,
    SIGNALING_PORT,
    NetLab,
)

HOSTS: dict[str, str] = {
    "node": "10.200.0.2",
    "worker": "10.200.0.3",
    "redis": "10.200.0.4",
    "s3": "10.200.0.5",
}
LAN_GATEWAY = "10.200.0.1"

CLOUD_NAT = f"""
table ip nat {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    iifname "wan" ip daddr {PUBLIC_SERVER} tcp dport {SIGNALING_PORT} dnat to {HOSTS["node"]}
    iifname "wan" ip daddr {PUBLIC_SERVER} udp dport {MEDIA_PORTS} dnat to {HOSTS["worker"]}
  }}
  chain post {{
    type nat hook postrouting priority srcnat;
    oifname "wan" ip saddr 10.200.0.0/24 snat to {PUBLIC_SERVER}
  }}
}}
"""


@dataclass
class HostsLab(NetLab):
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-dc")

    def _build(self) -> None:
        for role in ("inet", "cloud", *HOSTS, "home", "fam"):
            self.add_namespace(role)
        self.ip("inet", "link", "add", "br0", "type", "bridge")
        self._addr("inet", "br0", f"{INTERNET}/24")
        for router, port, public in (
            ("cloud", "c0", PUBLIC_SERVER),
            ("home", "h0", "198.51.100.20"),
        ):
            self._link(router, "wan", "inet", port)
            self.ip("inet", "link", "set", port, "master", "br0", "up")
            self._addr(router, "wan", f"{public}/24")
            self.ip(router, "route", "add", "default", "via", INTERNET)
            self.sysctl(router, "net.ipv4.ip_forward=1")
        self.ip("cloud", "link", "add", "lan", "type", "bridge")
        self._addr("cloud", "lan", f"{LAN_GATEWAY}/24")
        for host, address in HOSTS.items():
            self._link("cloud", f"p-{host}", host, "eth0")
            self.ip("cloud", "link", "set", f"p-{host}", "master", "lan", "up")
            self._addr(host, "eth0", f"{address}/24")
            self.ip(host, "route", "add", "default", "via", LAN_GATEWAY)
        self._link("home", "lan", "fam", "wlan")
        self._addr("home", "lan", "10.201.0.1/24")
        self._addr("fam", "wlan", f"{FAMILY_WLAN}/24")
        self.ip("fam", "route", "add", "default", "via", "10.201.0.1")
        self.nft("cloud", CLOUD_NAT)
        self.nft("home", HOME_NAT)

    def unplug(self, host: str) -> None:
        """The host drops off the network (its cable pulled: nothing in or out)."""
        self.ip(host, "link", "set", "eth0", "down")
