"""Subprocess for the crash tests: records a call into storage and is SIGKILLed mid-call.

``python -m tests.system.recorder.crash_writer LOCATION CALL_ID FAST_SECONDS``: records into
``open_storage(LOCATION)`` (a directory, or ``s3://`` with the ``AWS_*`` variables), writes
FAST_SECONDS of media at once, prints ``written FAST_SECONDS BYTES`` (bytes in the file so
far) on stdout, then keeps writing in real time (the clips over and over) until killed.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import Iterator

from recorder.muxer import CallRecording
from recorder.storage import open_storage
from tests.system.recorder.frames import SECONDS, Frame, call_frames


def endless() -> Iterator[Frame]:
    """The call's frames, then again and again, later on the same media clocks."""
    frames = call_frames()
    for lap in itertools.count():
        shift = lap * SECONDS
        for f in frames:
            ticks = round(shift * f.time_base.denominator / f.time_base.numerator)
            yield dataclasses.replace(f, at=f.at + shift, pts=f.pts + ticks)


def main() -> None:
    root, call_id, fast = sys.argv[1], sys.argv[2], float(sys.argv[3])
    file = open_storage(root).open_recording(call_id)
    recording = CallRecording.open(file, call_id)
    origin = time.monotonic()  # arrival = origin + media time: one steady call clock
    pace: float | None = None  # real-time pacing after the fast part
    for frame in endless():
        if frame.at >= fast:
            if pace is None:
                print(f"written {fast} {file.tell()}", flush=True)
                pace = time.monotonic() - frame.at
            time.sleep(max(0.0, pace + frame.at - time.monotonic()))
        recording.write(frame.party, frame.kind, frame.packet(), arrival=origin + frame.at)


if __name__ == "__main__":
    main()
