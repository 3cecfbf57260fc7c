"""The transcription benchmark: how fast the pocketsphinx engine turns call audio into text, and
how a queue of calls drains.

``python -m loadtest.transcribe_bench [--calls 8] [--workers 1,2] [--sentences 4]
[--engine pocketsphinx] [--json out.json]`` (``make bench-transcripts ARGS=...``)

Everything runs on this machine: a private embedded Redis, the real recorder (``--calls``
sealed, signed, audio-only recordings in which both parties speak ``--sentences`` espeak-ng
sentences each, as Opus), and for each worker count in ``--workers`` that many real
transcription worker processes (``python -m transcripts.worker``, the engine of
``--engine``). Each round queues every call at once, through the queue the nodes use, and
samples the backlog until every transcript is done. Reported per round:

- audio s: seconds of call audio transcribed (both parties, what the workers decoded);
- audio/CPU s: seconds of audio per CPU second, from the workers' own job accounting (job CPU)
  and from their processes' whole CPU time (process CPU: also idle polling, heartbeats, start);
- audio/wall s: seconds of audio per second of wall time from queueing to the last transcript;
- drain s: that wall time; peak backlog: the most jobs waiting at once; latency: queueing to
  done, median and worst.

Quick smoke run: ``--calls 2 --workers 1 --sentences 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from redis.asyncio import Redis

from core.embedded_redis import EmbeddedRedis
from core.redis_pool import connect
from loadtest.transcribe_speech import espeak_available, record_voices, speech
from recorder.manifest import Manifest
from recorder.service import CallInfo, RecordingService
from recorder.storage import LocalStorage
from transcripts.pool import TranscriberPool
from transcripts.queue import TranscriptionQueue, queue_depth
from transcripts.service import TranscriptService
from transcripts.store import TranscriptStore

SENTENCES: Final = (
    "bring the package to the north gate on tuesday morning",
    "the visit is on friday and the children will come with their grandmother",
    "tell your brother the money arrived and the lawyer will call next week",
    "i start the kitchen job on monday and the food is better than last year",
    "we moved to the new apartment near the river and the school is close",
    "your sister passed her driving test and she will bring the car",
)
POLL_S: Final = 0.1
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Round:
    workers: int
    calls: int
    audio_s: float
    job_cpu_s: float
    process_cpu_s: float
    drain_s: float
    peak_backlog: int
    latency_median_s: float
    latency_max_s: float
    failed: int

    @property
    def audio_per_job_cpu_s(self) -> float:
        return self.audio_s / self.job_cpu_s if self.job_cpu_s else 0.0

    @property
    def audio_per_process_cpu_s(self) -> float:
        return self.audio_s / self.process_cpu_s if self.process_cpu_s else 0.0

    @property
    def audio_per_wall_s(self) -> float:
        return self.audio_s / self.drain_s if self.drain_s else 0.0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.transcribe_bench", description=__doc__
    )
    parser.add_argument("--calls", type=int, default=8, help="calls queued at once per round")
    parser.add_argument("--workers", default="1,2", help="worker counts, one round each (e.g. 1,2)")
    parser.add_argument("--sentences", type=int, default=4, help="sentences each party says")
    parser.add_argument("--engine", default="pocketsphinx", help="VISITATION_STT_ENGINE")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per round")
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    except ValueError:
        parser.error(f"--workers is not a list of counts: {args.workers!r}")
    if not args.workers or min(args.workers) < 1:
        parser.error("every worker count must be at least 1")
    if args.calls < 1 or args.sentences < 1:
        parser.error("--calls and --sentences must be at least 1")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.data_dir = data_dir
        self.recordings_dir = data_dir / "recordings"
        self.secret = secrets.token_hex(32).encode()
        self.embedded = EmbeddedRedis(data_dir / "redis")
        self.redis: Redis

    async def run(self) -> list[Round]:
        redis_url = await asyncio.to_thread(self.embedded.start)
        redis = self.redis = connect(redis_url)
        queue = TranscriptionQueue(redis_url)
        try:
            recordings = RecordingService(redis, LocalStorage(self.recordings_dir), self.secret)
            manifests = await self.record(recordings)
            service = TranscriptService(redis, self.secret, queue)
            return [await self.round(redis_url, service, manifests, n) for n in self.args.workers]
        finally:
            queue.close()
            await redis.aclose()
            await asyncio.to_thread(self.embedded.stop)

    async def record(self, recordings: RecordingService) -> list[Manifest]:
        """The calls, recorded and sealed once; each round transcribes them again."""
        n = self.args.sentences
        family = speech([SENTENCES[i % len(SENTENCES)] for i in range(n)])
        tablet = speech([SENTENCES[(i + 3) % len(SENTENCES)] for i in range(n)], lead_s=2.0)
        manifests = []
        for i in range(self.args.calls):
            now = time.time()
            info = CallInfo(
                call_id=uuid.uuid4().hex,
                facility_id="BENCH",
                resident_id=f"R{i}",
                family_id=f"F{i}",
                started_at=now,
                connected_at=now,
            )
            await record_voices(recordings, info, {"family": family, "tablet": tablet})
            entry = await recordings.catalog.get(info.call_id)
            assert entry is not None and entry.state == "final", "the recording was not sealed"
            manifests.append(entry.manifest)
        return manifests

    async def round(
        self, redis_url: str, service: TranscriptService, manifests: list[Manifest], workers: int
    ) -> Round:
        store = service.store
        for manifest in manifests:  # a fresh start: every call without a transcript
            await store.forget(manifest.call_id)
        pool = TranscriberPool(
            redis_url,
            str(self.recordings_dir),
            log_level="WARNING",
            env={
                "VISITATION_SECRET": self.secret.decode(),
                "VISITATION_STT_ENGINE": self.args.engine,
            },
            id_prefix=f"bench{workers}",
        )
        try:
            await pool.start(workers)
            await pool.wait_ready(self.redis, timeout_s=60)
            pids = [p.pid for p in pool.processes.values()]
            cpu_before = sum(process_cpu_s(pid) for pid in pids)
            started = time.time()
            for manifest in manifests:
                await service.on_sealed(manifest)
            peak, finished = await self.drain(store, manifests, started)
            cpu_after = sum(process_cpu_s(pid) for pid in pids)
        finally:
            await pool.stop()
        done = [s for s in [await store.get(m.call_id) for m in manifests] if s is not None]
        latencies = [finished[c] - started for c in finished]
        return Round(
            workers=workers,
            calls=len(manifests),
            audio_s=round(sum(s.audio_s for s in done if s.status == "done"), 2),
            job_cpu_s=round(sum(s.cpu_s for s in done if s.status == "done"), 2),
            process_cpu_s=round(cpu_after - cpu_before, 2),
            drain_s=round(max(latencies, default=0.0), 2),
            peak_backlog=peak,
            latency_median_s=round(statistics.median(latencies), 2) if latencies else 0.0,
            latency_max_s=round(max(latencies, default=0.0), 2),
            failed=sum(1 for s in done if s.status == "failed"),
        )

    async def drain(
        self, store: TranscriptStore, manifests: list[Manifest], started: float
    ) -> tuple[int, dict[str, float]]:
        """Until every call is done or failed: the peak backlog, and when each was done."""
        finished: dict[str, float] = {}
        peak = 0
        deadline = time.monotonic() + self.args.timeout_s
        while len(finished) < len(manifests):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(manifests) - len(finished)} transcripts not done")
            peak = max(peak, (await queue_depth(self.redis)).backlog)
            for manifest in manifests:
                if manifest.call_id in finished:
                    continue
                stored = await store.get(manifest.call_id)
                if stored is not None and stored.status in ("done", "failed"):
                    finished[manifest.call_id] = stored.updated_at or time.time()
            await asyncio.sleep(POLL_S)
        return peak, finished


HEADER: Final = (
    "workers",
    "calls",
    "audio s",
    "job CPU s",
    "proc CPU s",
    "audio/job-CPU s",
    "audio/proc-CPU s",
    "audio/wall s",
    "drain s",
    "peak backlog",
    "latency med/max s",
    "failed",
)


def cells(r: Round) -> tuple[str, ...]:
    return (
        str(r.workers),
        str(r.calls),
        f"{r.audio_s:.1f}",
        f"{r.job_cpu_s:.1f}",
        f"{r.process_cpu_s:.1f}",
        f"{r.audio_per_job_cpu_s:.2f}",
        f"{r.audio_per_process_cpu_s:.2f}",
        f"{r.audio_per_wall_s:.2f}",
        f"{r.drain_s:.1f}",
        str(r.peak_backlog),
        f"{r.latency_median_s:.1f}/{r.latency_max_s:.1f}",
        str(r.failed),
    )


def table(rounds: list[Round]) -> str:
    rows = [HEADER, *(cells(r) for r in rounds)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    if not espeak_available():
        print("espeak-ng is missing: apt-get install -y espeak-ng (make install does it)")
        return 2
    with tempfile.TemporaryDirectory(prefix="visitation-stt-bench-") as tmp:
        rounds = asyncio.run(Bench(args, Path(tmp)).run())
    print(
        f"transcription benchmark: engine {args.engine}, {os.cpu_count()} CPU(s), "
        f"{args.sentences} sentence(s) a party a call"
    )
    print(table(rounds))
    if args.json is not None:
        figures = [
            asdict(r)
            | {
                "audio_per_job_cpu_s": r.audio_per_job_cpu_s,
                "audio_per_process_cpu_s": r.audio_per_process_cpu_s,
                "audio_per_wall_s": r.audio_per_wall_s,
            }
            for r in rounds
        ]
        args.json.write_text(json.dumps({"engine": args.engine, "rounds": figures}, indent=2))
    return 1 if any(r.failed for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
