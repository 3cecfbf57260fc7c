"""Subprocess for the crash test: records a call into LocalStorage and is SIGKILLed mid-call.

``python -m tests.recorder.crash_writer ROOT CALL_ID FAST_SECONDS``: writes FAST_SECONDS of
media at once, prints that on stdout, then keeps writing in real time until killed.
"""

from __future__ import annotations

import sys
import time

from recorder.muxer import CallRecording
from recorder.storage import LocalStorage
from tests.recorder.frames import call_frames


def main() -> None:
    root, call_id, fast = sys.argv[1], sys.argv[2], float(sys.argv[3])
    recording = CallRecording.open(LocalStorage(root).open_recording(call_id), call_id)
    frames = call_frames()
    origin = time.monotonic()  # arrival = origin + media time: one steady call clock
    pace: float | None = None  # real-time pacing after the fast part
    for frame in frames:
        if frame.at >= fast:
            if pace is None:
                print(f"written {fast}", flush=True)
                pace = time.monotonic() - frame.at
            time.sleep(max(0.0, pace + frame.at - time.monotonic()))
        recording.write(frame.party, frame.kind, frame.packet(), arrival=origin + frame.at)
    print("finished without being killed", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    main()
