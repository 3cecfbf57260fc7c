"""A writer SIGKILLed mid-call leaves a playable file; the sweep finalizes it as incomplete."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import av

from core.spawn import PIPE, spawn
from recorder.service import RecordingService
from recorder.storage import LocalStorage
from tests.system.recorder.conftest import call_info
from tests.system.recorder.test_muxer import video_colours
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[3]
FAST_S = 3.0  # media written before the kill is announced; more follows in real time


@dataclass(frozen=True)
class Writer:
    pid: int
    written: int  # bytes in its file when it reached the real-time part

    def file_size(self, call_id: str) -> int:
        """The size of the file the writer has open for ``call_id``, even once unlinked from
        the store (read through its descriptor); 0 if it has none open."""
        fds = Path(f"/proc/{self.pid}/fd")
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if call_id in os.readlink(fd):
                    return os.stat(fd).st_size
        return 0


@contextlib.asynccontextmanager
async def writer_mid_call(storage: LocalStorage, call_id: str) -> AsyncIterator[Writer]:
    """A writer process in the real-time part of a call, SIGKILLed on exit."""
    argv = [sys.executable, "-m", "tests.system.recorder.crash_writer", str(storage.root), call_id]
    proc = await spawn([*argv, str(FAST_S)], cwd=ROOT, stdout=PIPE)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.decode().startswith("written"), line
        yield Writer(proc.pid, int(line.split()[2]))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


async def kill_writer_mid_call(storage: LocalStorage, call_id: str) -> None:
    async with writer_mid_call(storage, call_id) as writer:
        # Mid-call: the real-time part has written more than the fast part.
        await eventually(
            lambda: writer.file_size(call_id) > writer.written, "real-time writing under way"
        )


async def test_killed_writer_leaves_a_playable_file_and_sweep_marks_it_incomplete(
    service: RecordingService, storage: LocalStorage
) -> None:
    await service.begin(call_info("CRASH1"))
    await kill_writer_mid_call(storage, "CRASH1")
    path = storage.part_path("CRASH1")  # still in progress: nobody sealed it

    # Up to the last ~1.5 s of what was written is on disk and plays: 4 tracks, both videos.
    last: dict[int, int] = {}
    with av.open(str(path)) as container:
        assert [s.codec_context.name for s in container.streams] == ["vp8", "opus"] * 2
        for packet in container.demux():
            if packet.pts is not None:
                last[packet.stream.index] = packet.pts
    assert sorted(last) == [0, 1, 2, 3]
    assert min(last.values()) >= (FAST_S - 1.6) * 1000, last
    for index, colour in ((0, "red"), (2, "blue")):
        decoded, colours = video_colours(path, index)
        assert decoded >= 30 and set(colours) == {colour}

    # Live calls are left alone; the dead one is finalized from the file as written.
    assert await service.sweep_orphans({"CRASH1"}) == []
    size = path.stat().st_size
    [manifest] = await service.sweep_orphans(set())
    assert manifest.call_id == "CRASH1" and manifest.complete is False
    assert manifest.incomplete_reason and "did not close the file" in manifest.incomplete_reason
    assert manifest.size == size == storage.path("CRASH1").stat().st_size and manifest.signature
    assert not path.exists()
    assert await service.catalog.open_call_ids() == []
    verification = await service.verify("CRASH1")
    assert verification is not None and verification.ok
    assert await service.sweep_orphans(set()) == []  # once


async def test_a_writer_still_running_cannot_change_a_sealed_recording(
    service: RecordingService, storage: LocalStorage
) -> None:
    """The dead-worker path finalizes while a slow (not dead) worker keeps writing: what it
    writes afterwards never reaches the signed bytes."""
    await service.begin(call_info("LATE1"))
    async with writer_mid_call(storage, "LATE1") as writer:
        part = storage.part_path("LATE1")
        manifest = await service.finalize("LATE1", None, writer=None)
        assert manifest is not None and manifest.complete is False and manifest.size
        written = part.stat().st_size if part.exists() else None
        assert written is None  # the writer's file is gone from the store
        # The writer goes on writing into its (unlinked) file for a while.
        before = os.stat(storage.path("LATE1")).st_size
        past = max(writer.file_size("LATE1"), before)
        await eventually(
            lambda: writer.file_size("LATE1") > past,
            "the writer writing on after the seal",
        )
        assert os.stat(storage.path("LATE1")).st_size == before == manifest.size
    verification = await service.verify("LATE1")
    assert verification is not None and verification.ok, verification
    assert storage.path("LATE1").stat().st_mode & 0o222 == 0  # sealed read-only
    with av.open(str(storage.path("LATE1"))) as container:
        assert len(container.streams) == 4
