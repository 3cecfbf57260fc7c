"""What recording costs the SFU worker, side by side: muxing on the loop (:class:`recorder.
RecorderTap`, the disk behind a :class:`~recorder.spool.Spool`) against a writer thread per call
(how the recorder worked before).

``python -m loadtest.recorder_handoff [--calls 25] [--seconds 10] [--rounds 2]``

One process plays a busy worker's event loop (uvloop): every 10 ms it forwards each call's packets of
that tick (per packet an SRTP unprotect and three protects with libsrtp, whose cffi calls
release the GIL as the SFU's do) and hands them to the recorder. The packets are a real
clip's: two parties' VP8 at 30 fps and Opus at 50 packets a second. Each round runs, one after
the other: no recorder (the baseline), a thread per call (fed a batch every 100 ms, as the
old tap did, the calls' batches spread over the ticks as their timers are), and the tap on
the loop. Measured: the process's CPU (all its threads) and its
context switches. Prints the recording's cost per call over the baseline, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import queue
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from pylibsrtp import Policy, Session

from client.clip import ClipSpec, load_clip
from recorder.muxer import PARTIES, TRACKS, CallRecording, Kind, Party
from recorder.tap import MS_PER_TICK, RecorderTap
from rtpkit.rtp import FrameAssembler, RtpIn, vp8_keyframe_start, vp8_payloads

TICK_S = 0.01
BATCH_TICKS = 10  # the old tap handed its thread a batch every 100 ms
VARIANTS = ("no recorder", "thread per call", "tap on the loop")


@dataclass(frozen=True)
class Item:
    party: Party
    kind: Kind
    packet: RtpIn
    keyframe_start: bool
    at: float  # seconds into the call


def call_packets(seconds: float) -> list[Item]:
    """One call's packets, both parties, in arrival order."""
    clip = load_clip(ClipSpec(colour="red"))
    items: list[Item] = []
    seqs = {
        (party, kind): itertools.count(1000) for party in PARTIES for kind in ("audio", "video")
    }
    audio_sent = 0
    for index in range(int(30 * seconds)):
        at = index / 30
        for party in PARTIES:
            payloads = vp8_payloads(clip.video[index % len(clip.video)], index)
            for n, payload in enumerate(payloads):
                seq = next(seqs[party, "video"]) & 0xFFFF
                last = int(n == len(payloads) - 1)
                packet = RtpIn(96, last, seq, (index * 3000) & 0xFFFFFFFF, 1, payload)
                items.append(Item(party, "video", packet, vp8_keyframe_start(payload), at))
        while audio_sent * 30 < (index + 1) * 50:
            for party in PARTIES:
                seq = next(seqs[party, "audio"]) & 0xFFFF
                payload = clip.audio[audio_sent % len(clip.audio)]
                packet = RtpIn(111, 1, seq, (audio_sent * 960) & 0xFFFFFFFF, 2, payload)
                items.append(Item(party, "audio", packet, False, at))
            audio_sent += 1
    return items


class _Forwarding:
    """The loop's own SRTP work per packet (an unprotect, three protects)."""

    def __init__(self) -> None:
        key = bytes(range(30))
        self._tx = [Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)) for _ in range(3)]
        self._rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        self._seq = itertools.count(1)

    def forward(self, packet: RtpIn) -> None:
        seq = next(self._seq)
        plain = (
            b"\x80\x60"
            + (seq & 0xFFFF).to_bytes(2, "big")
            + (seq * 3000 & 0xFFFFFFFF).to_bytes(4, "big")
            + b"\x00\x00\x00\x01"
            + packet.payload[:200]
        )
        self._rx.unprotect(self._tx[0].protect(plain))
        self._tx[1].protect(plain)
        self._tx[2].protect(plain)


class _ThreadWriter:
    """The old recorder: a thread per call assembles and muxes the batches it is handed."""

    def __init__(self, recording: CallRecording) -> None:
        self.recording = recording
        self._assemblers = {key: FrameAssembler(key[1] == "video") for key in TRACKS}
        self._queue: queue.SimpleQueue[list[tuple[Item, float]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, batch: list[tuple[Item, float]] | None) -> None:
        self._queue.put(batch)

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            for item, arrival in batch:
                packet = item.packet
                frames = self._assemblers[item.party, item.kind].push(
                    packet.sequence_number,
                    packet.timestamp,
                    bool(packet.marker),
                    packet.payload,
                    arrival,
                )
                for frame in frames:
                    ms = frame.timestamp * MS_PER_TICK[item.kind]
                    self.recording.write_frame(item.party, item.kind, frame.data, ms, frame.arrival)
        self.recording.close()

    def join(self) -> None:
        self._thread.join()


class _Publisher:
    """What :class:`RecorderTap` needs of a publisher: its taps."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tap: Callable[[Any, bool, float], None] | None = None

    def add_tap(self, tap: Callable[[Any, bool, float], None]) -> Callable[[], None]:
        self.tap = tap
        return lambda: None

    def request_keyframe(self) -> None:
        pass


class _Room:
    def __init__(self, call_id: str) -> None:
        self.call_id, self.privileged = call_id, False
        self.publishers = {key: _Publisher(key[1]) for key in TRACKS}

    def publisher(self, party: Party, kind: str) -> _Publisher | None:
        return self.publishers.get((party, "video" if kind == "video" else "audio"))

    def add_publisher_listener(self, listener: Any) -> None:
        pass


@dataclass(frozen=True)
class Run:
    variant: str
    calls: int
    seconds: float
    cpu_s: float
    switches: int
    frames: int

    def per_call(self, baseline: Run) -> float:
        """The recording's share of a core per call, over the baseline (percent)."""
        return (self.cpu_s - baseline.cpu_s) / self.seconds / self.calls * 100


async def run(variant: str, calls: int, seconds: float, packets: list[Item], folder: Path) -> Run:
    forwarding = _Forwarding()
    recordings = [
        CallRecording.open(folder / f"{variant[:6]}-{n}-{time.monotonic_ns()}.webm", f"C{n}")
        for n in range(calls if variant != VARIANTS[0] else 0)
    ]
    threads = [_ThreadWriter(r) for r in recordings] if variant == VARIANTS[1] else []
    rooms: list[_Room] = []
    taps: list[RecorderTap] = []
    if variant == VARIANTS[2]:
        rooms = [_Room(r.call_id) for r in recordings]
        taps = [RecorderTap.for_room(room, r) for room, r in zip(rooms, recordings, strict=True)]
    batches: list[list[tuple[Item, float]]] = [[] for _ in threads]
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    position, ticks = 0, int(seconds / TICK_S)
    for tick in range(1, ticks + 1):
        end = len(packets) * tick // ticks
        now = time.monotonic()
        for call in range(calls):
            for item in packets[position:end]:
                forwarding.forward(item.packet)
                if threads:
                    batches[call].append((item, now))
                elif rooms:
                    hand_over = rooms[call].publishers[item.party, item.kind].tap
                    assert hand_over is not None
                    hand_over(item.packet, item.keyframe_start, now)
        position = end
        for call, thread in enumerate(threads):
            if (tick + call) % BATCH_TICKS == 0:  # each call's timer runs on its own phase
                thread.put(batches[call])
                batches[call] = []
        await asyncio.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
    for thread, batch in zip(threads, batches, strict=True):
        thread.put(batch)
        thread.put(None)
    for thread in threads:
        thread.join()
    for tap in taps:
        await tap.aclose()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    switches = after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw
    frames = sum(r.stats.packets for r in recordings)
    return Run(variant, calls, seconds, cpu, switches, frames)


async def measure(calls: int, seconds: float, rounds: int) -> dict[str, list[Run]]:
    packets = call_packets(seconds)
    results: dict[str, list[Run]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="recorder-handoff-") as folder:
        for _ in range(rounds):
            for variant in VARIANTS:
                results[variant].append(await run(variant, calls, seconds, packets, Path(folder)))
    return results


def report(results: dict[str, list[Run]]) -> str:
    baseline = min(results[VARIANTS[0]], key=lambda r: r.cpu_s)
    lines = [
        "| recorder | process CPU | recording, per call | context switches/s | frames |",
        "|---|---|---|---|---|",
    ]
    cost: dict[str, float] = {}
    for variant, runs in results.items():
        median = statistics.median(r.cpu_s for r in runs)
        switches = statistics.median(r.switches for r in runs) / runs[0].seconds
        per_call = statistics.median(r.per_call(baseline) for r in runs)
        cost[variant] = per_call
        shown = "-" if variant == VARIANTS[0] else f"{per_call:.3f} % of a core"
        lines.append(
            f"| {variant} | {median / runs[0].seconds * 100:.1f} % | {shown} "
            f"| {switches:,.0f} | {runs[-1].frames:,} |"
        )
    ratio = cost[VARIANTS[2]] / cost[VARIANTS[1]] if cost[VARIANTS[1]] > 0 else None
    shown = f"{ratio:.2f}" if ratio is not None else "not measured (no cost over the baseline)"
    lines.append(f"tap on the loop / thread per call: {shown}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(report(uvloop.run(measure(args.calls, args.seconds, args.rounds))))


if __name__ == "__main__":
    main()
