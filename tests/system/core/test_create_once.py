"""Keys made once in the data dir: racing processes share one, and none reads one half written.

Two nodes starting together on one data dir both found no VAPID key; one created the file and
the other read it before a byte was written (a fault-suite node died of "short data"). The
signing secret was made the same way, where an empty read would have been a silent empty
secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import load_secret
from core.permissions import create_once

ROOT = Path(__file__).resolve().parents[3]

# Each process waits for the same moment (only to make the race likely), then loads both.
_LOAD = """
import os, sys, time
from core.config import load_secret
from push.vapid import load_vapid, public_key
data_dir, start_at = sys.argv[1], float(sys.argv[2])
while time.time() < start_at:
    pass
from pathlib import Path
print(load_secret(Path(data_dir)).decode(), public_key(load_vapid(Path(data_dir))), flush=True)
"""


def test_racing_processes_share_one_secret_and_one_vapid_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("VISITATION_SECRET",)}
    env.pop("VISITATION_VAPID_PRIVATE_KEY", None)
    start_at = str(time.time() + 3.0)
    argv = [sys.executable, "-c", _LOAD, str(data_dir), start_at]
    procs = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode(errors="replace")
        outputs.append(out.decode().split())
    assert all(len(o) == 2 and o[0] for o in outputs), outputs
    assert len({tuple(o) for o in outputs}) == 1, outputs
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.key", "vapid_private.pem"]


def test_the_first_content_wins_and_nothing_else_is_left(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "key"
    assert create_once(path, b"first") == b"first"
    assert create_once(path, b"second") == b"first"
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["key"]


def test_a_secret_file_made_before_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISITATION_SECRET", raising=False)
    (tmp_path / "secret.key").write_bytes(b"made-before\n")
    assert load_secret(tmp_path) == b"made-before"
    fresh = load_secret(tmp_path / "new")
    assert len(fresh) == 64 and load_secret(tmp_path / "new") == fresh
