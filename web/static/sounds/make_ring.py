"""Make ``ring.wav``, the family page's ringtone: a two-tone double ring, synthesized here.

    python web/static/sounds/make_ring.py  # rewrites ring.wav next to this script

One cycle of a classic telephone cadence (two 0.4 s bursts of 400 Hz + 450 Hz, 0.2 s apart,
then 2 s of silence), 3 s long, so that ``<audio loop>`` rings on for as long as it plays.
Each burst fades in and out over 15 ms (no clicks). 8 kHz, 16-bit mono PCM: about 48 KB.
Made by the project (stdlib only), so there is no licence to track.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000  # Hz: telephone quality is what a ring should sound like
TONES = (400.0, 450.0)  # Hz, mixed
BURSTS = ((0.0, 0.4), (0.6, 1.0))  # seconds: on from..to
LENGTH_S = 3.0
FADE_S = 0.015
PEAK = 0.45  # of full scale: loud enough, never clipping
OUT = Path(__file__).with_name("ring.wav")


def envelope(t: float) -> float:
    """0..1: inside a burst (with its fades) or silent."""
    for start, end in BURSTS:
        if start <= t < end:
            return min(1.0, (t - start) / FADE_S, (end - t) / FADE_S)
    return 0.0


def samples() -> list[int]:
    count = round(LENGTH_S * RATE)
    out = []
    for n in range(count):
        t = n / RATE
        mix = sum(math.sin(2 * math.pi * f * t) for f in TONES) / len(TONES)
        out.append(round(32767 * PEAK * envelope(t) * mix))
    return out


def write(path: Path = OUT) -> None:
    frames = b"".join(struct.pack("<h", s) for s in samples())
    with wave.open(str(path), "wb") as ring:
        ring.setnchannels(1)
        ring.setsampwidth(2)
        ring.setframerate(RATE)
        ring.writeframes(frames)


if __name__ == "__main__":
    write()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
