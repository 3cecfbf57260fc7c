"""How much of a call's recording is on disk so far: a condition for tests to wait on instead
of sleeping for "a few seconds of call" (the recorder writes in real time)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import av

from tests.waiting import eventually


def video_seconds_on_disk(root: Path, call_id: str) -> float:
    """The first video track's last timestamp (seconds) in the call's recording as written so
    far, under ``root`` (``<call_id>.webm`` or its ``.part``); 0 while nothing is readable.
    What is counted here survives a SIGKILL of the writer: it is in the file already."""
    latest = 0.0
    for path in root.rglob(f"{call_id}.webm*"):
        with contextlib.suppress(av.error.FFmpegError, OSError, IndexError):
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if packet.pts is not None and packet.time_base is not None:
                        latest = max(latest, float(packet.pts * packet.time_base))
    return latest


async def recorded(root: Path, call_id: str, seconds: float, within_s: float = 30) -> None:
    """Wait until ``seconds`` of the call's video are on disk."""
    await eventually(
        lambda: video_seconds_on_disk(root, call_id) >= seconds,
        lambda: f"{seconds} s of {call_id}'s video on disk under {root}",
        within_s=within_s,
        interval_s=0.2,
    )
