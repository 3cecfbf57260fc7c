"""A writer SIGKILLed mid-call leaves a playable file; the sweep finalizes it as incomplete."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import av

from recorder.service import RecordingService
from recorder.storage import LocalStorage
from tests.recorder.conftest import call_info
from tests.recorder.test_muxer import video_colours

ROOT = Path(__file__).resolve().parents[2]
FAST_S = 3.0  # media written before the kill is announced; more follows in real time


async def kill_writer_mid_call(storage: LocalStorage, call_id: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.recorder.crash_writer", str(storage.root), call_id,
        str(FAST_S), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.decode().startswith("written"), line
        await asyncio.sleep(0.3)  # mid-call, in the real-time part
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


async def test_killed_writer_leaves_a_playable_file_and_sweep_marks_it_incomplete(
    service: RecordingService, storage: LocalStorage
) -> None:
    await service.begin(call_info("CRASH1"))
    await kill_writer_mid_call(storage, "CRASH1")
    path = storage.path("CRASH1")

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
    [manifest] = await service.sweep_orphans(set())
    assert manifest.call_id == "CRASH1" and manifest.complete is False
    assert manifest.size == path.stat().st_size and manifest.signature
    assert await service.catalog.open_call_ids() == []
    verification = await service.verify("CRASH1")
    assert verification is not None and verification.ok
    assert await service.sweep_orphans(set()) == []  # once
