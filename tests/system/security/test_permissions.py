"""Finding 8 (files): everything under the data dir is the server user's alone: directories
0700, files 0600 (sealed recordings 0400), the embedded Redis's files included; a data dir made
before (0755, 0644) is fixed at start-up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from loadtest.processes import ServeProcess
from recorder.storage import LocalStorage


def loose(root: Path) -> list[str]:
    """Paths under ``root`` (and itself) that a group or other user may use in any way."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            found.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(root)}")
    return found


def test_serve_keeps_the_data_dir_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    (data_dir / "recordings").mkdir(parents=True)
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "recordings", 0o755)
    old = data_dir / "recordings" / "old-call.webm"
    old.write_bytes(b"made before")
    os.chmod(old, 0o644)
    proc = ServeProcess(
        data_dir, "--workers", "0", env={"REDIS_URL": "", "VISITATION_SECRET": ""}
    ).wait_ready(30)
    try:
        status, body = proc.healthz()
        assert (status, body["redis"]) == (503, True)  # 503: --workers 0
        assert (data_dir / "secret.key").exists() and (data_dir / "redis" / "redis.url").exists()
        assert loose(data_dir) == []
    finally:
        assert proc.terminate() == 0
    assert loose(data_dir) == []  # what Redis wrote on its way out too


def test_recordings_are_written_private_and_sealed_read_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "recordings")
    with storage.open_recording("C1") as fh:
        fh.write(b"media")
    assert stat.S_IMODE(storage.part_path("C1").stat().st_mode) == 0o600
    assert storage.seal("C1", writer_closed=True) is not None
    assert stat.S_IMODE(storage.path("C1").stat().st_mode) == 0o400
    assert stat.S_IMODE((tmp_path / "recordings").stat().st_mode) == 0o700
