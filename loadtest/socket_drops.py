"""Datagrams the kernel dropped at a process's UDP sockets, from ``/proc``.

A UDP socket whose receive buffer is full drops what arrives, and counts it (the ``drops``
column of ``/proc/net/udp`` and ``udp6``). The benchmark's worker and its clients run on one
machine, so the machine-wide ``RcvbufErrors`` cannot say which side lost a frame; the sockets
each process holds (``/proc/<pid>/fd`` -> ``socket:[inode]``) can. A client that reads too
slowly shows here, not as the worker's loss.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` has open (empty if it is gone)."""
    inodes: set[int] = set()
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{folder}/{name}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def parse_drops(table: str) -> dict[int, int]:
    """``inode -> drops`` from the text of ``/proc/net/udp`` (or ``udp6``)."""
    drops: dict[int, int] = {}
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 13:
            drops[int(fields[9])] = int(fields[12])
    return drops


def udp_drops(pids: Iterable[int]) -> dict[int, int]:
    """Per process: datagrams dropped so far at the UDP sockets it has open now."""
    owners = {inode: pid for pid in pids for inode in socket_inodes(pid)}
    totals = dict.fromkeys(owners.values(), 0)
    for table in TABLES:
        try:
            text = table.read_text(encoding="ascii")
        except OSError:
            continue  # no IPv6 here
        for inode, dropped in parse_drops(text).items():
            pid = owners.get(inode)
            if pid is not None:
                totals[pid] += dropped
    return totals
