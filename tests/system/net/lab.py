"""A small internet in network namespaces: a server behind a cloud NAT, a family behind a
home NAT (and a mobile one to move to), a TURN server on the "internet" between them.

::

    srv 10.200.0.2 ── cloud NAT ── 198.51.100.7 (1:1 for udp 40000-40199 and tcp 8080)
                                        │
                          inet: bridge 198.51.100.1 (coturn)
                                        │
    fam wlan 10.201.0.2 ── home NAT ── 198.51.100.20 (masquerade)
    fam lte  10.202.0.2 ── mobile NAT ─ 198.51.100.21 (masquerade, random ports)

Every address is one the lab creates; no namespace has a route anywhere else (the NATs' default
route leads to the lab's internet, whose default route is a veth that discards what it gets), so nothing it sends can leave the machine. Interfaces are created straight inside their namespaces (no name
in the root namespace); :meth:`NetLab.destroy` kills whatever still runs inside them and
deletes them (with their veths, bridge and nftables tables), also for a lab left behind by a
killed run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Self

from loadtest.netns import delete_namespace, remove_stale, sh

PUBLIC_SERVER = "198.51.100.7"
INTERNET = "198.51.100.1"  # the bridge, where coturn listens
SERVER_LAN = "10.200.0.2"
FAMILY_WLAN = "10.201.0.2"
FAMILY_LTE = "10.202.0.2"
MEDIA_PORTS = "40000-40199"
SIGNALING_PORT = 8080
PREFIX = "vnl"  # namespaces are "vnl<pid>-<role>"

CLOUD_NAT = f"""
table ip nat {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    iifname "wan" ip daddr {PUBLIC_SERVER} udp dport {MEDIA_PORTS} dnat to {SERVER_LAN}
    iifname "wan" ip daddr {PUBLIC_SERVER} tcp dport {SIGNALING_PORT} dnat to {SERVER_LAN}
  }}
  chain post {{
    type nat hook postrouting priority srcnat;
    oifname "wan" ip saddr 10.200.0.0/24 snat to {PUBLIC_SERVER}
  }}
}}
"""
HOME_NAT = """
table ip nat {
  chain post { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
}
"""
MOBILE_NAT = """
table ip nat {
  chain post { type nat hook postrouting priority srcnat; oifname "wan" masquerade random; }
}
"""


def remove_stale_labs() -> None:
    """Delete labs of runs that died without cleaning up (their creator's pid is gone)."""
    remove_stale(PREFIX)


@dataclass
class NetLab:
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    names: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.tag}-{role}"

    def exec_prefix(self, role: str) -> list[str]:
        """argv prefix that runs a command inside ``role``'s namespace."""
        return ["ip", "netns", "exec", self.ns(role)]

    def ip(self, role: str, *args: str, check: bool = True) -> str:
        return sh("ip", "-n", self.ns(role), *args, check=check)

    def nft(self, role: str, rules: str) -> None:
        sh(*self.exec_prefix(role), "nft", "-f", "-", stdin=rules)

    def sysctl(self, role: str, setting: str) -> None:
        sh(*self.exec_prefix(role), "sysctl", "-qw", setting)

    def add_namespace(self, role: str) -> None:
        sh("ip", "netns", "add", self.ns(role))
        self.names.append(self.ns(role))
        self.ip(role, "link", "set", "lo", "up")

    def _link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        sh("ip", "link", "add", a_if, "netns", self.ns(a), "type", "veth",
           "peer", "name", b_if, "netns", self.ns(b))  # fmt: skip

    def _addr(self, role: str, dev: str, cidr: str) -> None:
        self.ip(role, "addr", "add", cidr, "dev", dev)
        self.ip(role, "link", "set", dev, "up")

    def build(self) -> Self:
        remove_stale_labs()
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _build(self) -> None:
        for role in ("inet", "cloud", "srv", "home", "mob", "fam"):
            self.add_namespace(role)
        self.ip("inet", "link", "add", "br0", "type", "bridge")
        self._addr("inet", "br0", f"{INTERNET}/24")
        # Where the internet loses packets to private addresses: silently (a sendto() to an
        # unreachable network would fail at once, and coturn ends the allocation on it).
        # (A veth whose far end drops frames that are not addressed to it: no dummy module
        # needed, and no neighbour lookup to fail.)
        self.ip("inet", "link", "add", "void", "type", "veth", "peer", "name", "void-end")
        self.ip("inet", "link", "set", "void-end", "address", "02:00:00:00:00:02", "up")
        self.ip("inet", "link", "set", "void", "up")
        self.ip("inet", "neigh", "add", "192.0.2.254", "lladdr", "02:00:00:00:00:01",
                "dev", "void", "nud", "permanent")  # fmt: skip
        self.ip("inet", "route", "add", "default", "via", "192.0.2.254", "dev", "void", "onlink")
        for router, port, public in (
            ("cloud", "c0", PUBLIC_SERVER),
            ("home", "h0", "198.51.100.20"),
            ("mob", "m0", "198.51.100.21"),
        ):
            self._link(router, "wan", "inet", port)
            self.ip("inet", "link", "set", port, "master", "br0", "up")
            self._addr(router, "wan", f"{public}/24")
            self.ip(router, "route", "add", "default", "via", INTERNET)
            self.sysctl(router, "net.ipv4.ip_forward=1")
        self._link("cloud", "lan", "srv", "eth0")
        self._addr("cloud", "lan", "10.200.0.1/24")
        self._addr("srv", "eth0", f"{SERVER_LAN}/24")
        self.ip("srv", "route", "add", "default", "via", "10.200.0.1")
        self._link("home", "lan", "fam", "wlan")
        self._addr("home", "lan", "10.201.0.1/24")
        self._link("mob", "lan", "fam", "lte")
        self._addr("mob", "lan", "10.202.0.1/24")
        self.nft("cloud", CLOUD_NAT)
        self.nft("home", HOME_NAT)
        self.nft("mob", MOBILE_NAT)
        self.family_on_wlan()

    # ------------------------------------------------------------------ the family's network

    def family_on_wlan(self) -> None:
        """The family at home (idempotent): wlan up with its address, lte down."""
        self.ip("fam", "addr", "flush", "dev", "lte")
        self.ip("fam", "link", "set", "lte", "down")
        self.ip("fam", "link", "set", "wlan", "up")
        if FAMILY_WLAN not in self.ip("fam", "-4", "addr", "show", "dev", "wlan"):
            self.ip("fam", "addr", "add", f"{FAMILY_WLAN}/24", "dev", "wlan")
        self.ip("fam", "route", "replace", "default", "via", "10.201.0.1")

    def family_to_lte(self) -> None:
        """The family walks out of the house: Wi-Fi gone, mobile data (another NAT) on."""
        self.ip("fam", "addr", "flush", "dev", "wlan")
        self.ip("fam", "link", "set", "wlan", "down")
        self.ip("fam", "link", "set", "lte", "up")
        self.ip("fam", "addr", "add", f"{FAMILY_LTE}/24", "dev", "lte")
        self.ip("fam", "route", "replace", "default", "via", "10.202.0.1")

    def block(self, router: str, name: str, rule: str) -> None:
        """Add a forward-drop ``rule`` on ``router`` (a table of its own: see :meth:`unblock`)."""
        self.nft(
            router,
            f"table inet {name} {{\n chain drops {{\n  type filter hook forward priority 0;\n"
            f"  {rule}\n }}\n}}\n",
        )

    def unblock(self, router: str, name: str) -> None:
        sh(*self.exec_prefix(router), "nft", "delete", "table", "inet", name, check=False)

    def destroy(self) -> None:
        for name in reversed(self.names):
            delete_namespace(name)
        self.names.clear()
