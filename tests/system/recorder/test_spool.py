"""recorder.spool.Spool: the recording's writes, queued for a thread, on a real file."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from recorder.spool import Spool


class Disk:
    """A real file whose writes can be held (a stalled disk) or made to fail (a full one)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("xb", buffering=0)
        self.go = threading.Event()
        self.go.set()
        self.writing = threading.Event()
        self.fail: OSError | None = None

    def write(self, data: bytes) -> int:
        self.writing.set()
        assert self.go.wait(30), "the test never let the disk go"
        if self.fail is not None:
            raise self.fail
        return self.file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def test_writes_reach_the_file_in_order_and_seeks_land_where_a_plain_file_would(
    tmp_path: Path,
) -> None:
    spool, plain = Spool(Disk(tmp_path / "s.bin")), io.BytesIO()  # type: ignore[arg-type]
    for target in (spool, plain):
        for n in range(200):
            target.write(bytes([n % 256]) * (n + 1))
        assert target.tell() == sum(range(1, 201))
        assert target.seek(7) == 7
        target.write(b"HEAD")
        target.seek(0, io.SEEK_END)
        target.write(b"TAIL")
    spool.close()
    assert (tmp_path / "s.bin").read_bytes() == plain.getvalue()
    assert spool.pending == 0 and spool.error is None


def test_a_stalled_disk_never_blocks_a_write_and_the_backlog_says_how_long_it_waited(
    tmp_path: Path,
) -> None:
    now = [100.0]
    disk = Disk(tmp_path / "slow.bin")
    disk.go.clear()
    spool = Spool(disk, clock=lambda: now[0])  # type: ignore[arg-type]
    spool.write(b"first")
    assert disk.writing.wait(10)
    now[0] += 2.5
    for _ in range(50):
        spool.write(b"x" * 1000)  # queued, not written: the writer is not held up
    assert spool.pending == 51
    assert spool.backlog_s == pytest.approx(2.5)  # the oldest write waited that long
    assert spool.seek(0, io.SEEK_CUR) == 5 + 50_000  # where it is: no wait for the disk
    disk.go.set()
    spool.close()
    assert spool.pending == 0 and spool.backlog_s == 0.0
    assert (tmp_path / "slow.bin").stat().st_size == 5 + 50_000


def test_a_failed_write_fails_the_next_ones_and_the_close_and_writes_nothing_after_it(
    tmp_path: Path,
) -> None:
    disk = Disk(tmp_path / "full.bin")
    spool = Spool(disk)  # type: ignore[arg-type]
    spool.write(b"kept")
    spool.flush()
    disk.fail = OSError(28, "No space left on device")
    spool.write(b"lost")
    with pytest.raises(OSError, match="No space left"):
        spool.flush()
    with pytest.raises(OSError, match="No space left"):
        spool.write(b"refused")
    assert spool.error is disk.fail
    disk.fail = None  # even once the disk is back, nothing after the failure is written
    with pytest.raises(OSError, match="No space left"):
        spool.close()
    assert spool.closed and disk.file.closed
    assert (tmp_path / "full.bin").read_bytes() == b"kept"


class ShortWrites(Disk):
    """A raw file that takes at most 700 bytes per write (as a raw file may)."""

    def write(self, data: bytes) -> int:
        return self.file.write(bytes(data)[:700])


def test_a_file_that_takes_part_of_each_write_still_gets_every_byte(tmp_path: Path) -> None:
    spool = Spool(ShortWrites(tmp_path / "short.bin"))  # type: ignore[arg-type]
    chunks = [bytes([n]) * (300 + 97 * n) for n in range(40)]
    for chunk in chunks:
        spool.write(chunk)
    spool.close()
    assert (tmp_path / "short.bin").read_bytes() == b"".join(chunks)
