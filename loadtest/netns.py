"""Network namespaces made by a run and always removed: the few ``ip`` commands they need.

Namespaces are named ``<prefix><pid>...`` after the process that made them, so a run killed
before it cleaned up is recognised by the next (its pid is gone) and its namespaces deleted
(:func:`remove_stale`). Used by the fault suite's other host (:mod:`loadtest.faults.media_host`)
and the network tests' labs (``tests/system/net``). Needs root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from core.embedded_redis import pid_alive


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def delete_namespace(name: str) -> None:
    """Kill whatever still runs inside ``name``, then delete it (its veths go with it)."""
    for pid in sh("ip", "netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    sh("ip", "netns", "del", name, check=False)


def remove_stale(prefix: str) -> None:
    """Delete the namespaces ``<prefix><pid>[-...]`` of runs whose process is gone."""
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        owner = name[len(prefix) :].split("-", 1)[0]
        if name.startswith(prefix) and owner.isdigit() and not pid_alive(int(owner)):
            delete_namespace(name)
