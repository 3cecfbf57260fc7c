"""The media benchmark: N concurrent calls through one SFU worker, then the naive aiortc pipeline.

``python -m loadtest.bench [--calls 25] [--sweep 4,8,16,25,32] [--repeat 3] [--seconds 30]
[--json out.json] [--skip-naive] [--idle-cpus-halt]``

Everything runs on this machine: a private embedded Redis, one in-process signaling node, and
ONE worker process per phase. Each call is two parties sending a looping pre-encoded 640x360
VP8 (~500 kbps, 30 fps) + Opus clip and one monitor, set up through the real protocol
(:mod:`loadtest.harness`). Phase ``sfu`` runs ``visitation.worker``; phase ``naive`` then runs
``loadtest.naive_worker`` (MediaRelay + MediaRecorder: decode and re-encode) with
``--naive-calls`` calls (default 1, the load it can carry; ``--naive-calls 25`` shows it
collapse, and the CPU ratio then is only a lower bound). The ratio is worker CPU per call. Prints a table with the SPEC 'Performance targets' verdicts; ``--json`` also writes
every number (including per call). ``--sweep`` runs the SFU phase once per load (a fresh
worker each time) and prints how CPU per call, loss, delays and set-up times grow with work;
the targets are judged at ``--calls``. With two or more cores the worker is pinned to one
core and the clients to the others; the report says when the clients were the bottleneck.
The clients are light (:mod:`client.light_peer`: counted from the clear RTP header, a sample
unprotected, frames sent in one system call); ``--full-clients`` runs the full ones (every
packet unprotected and authenticated) to compare. Every row says whether the clients kept up
(their CPU share of their cores, how late they sent frames, their loop's lag,
:func:`loadtest.report.clients_verdict`); a row where they did not is NOT A MEASUREMENT.
``--repeat`` runs the loads in interleaved rounds and reports, per load, the run with the median
CPU per call (a VM's speed drifts by tens of percent within minutes).

Idle CPUs: as a media host dedicating cores should (:mod:`media.wake_latency`), the benchmark
keeps idle CPUs polling rather than halting while it runs, for both pipelines, when it may
(root); ``--idle-cpus-halt`` measures the machine as it idles by default. The report says which.
Quick smoke run: ``--calls 4 --seconds 10``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiortc
import uvloop

from core.runtime import tune_gc
from loadtest.harness import Environment, PhaseOptions, run_phase, setup_logging
from loadtest.report import ceiling, cpu_ratio, median_runs, phase_row, table, targets
from media.admission import DEFAULT_MAX_CALLS
from media.wake_latency import current_limit_us, held


def _loads(text: str) -> list[int]:
    try:
        loads = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of call counts: {text!r}") from None
    if not loads or min(loads) < 1:
        raise argparse.ArgumentTypeError("every load must be >= 1")
    return loads


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=25, help="concurrent calls (default 25)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="steady measuring window (default 30)"
    )
    parser.add_argument(
        "--sweep",
        type=_loads,
        default=[],
        help="comma-separated loads, e.g. 4,8,16,25,32 (--calls is always included)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over the loads; the median run counts"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin worker and clients")
    parser.add_argument(
        "--idle-cpus-halt",
        action="store_true",
        help="do not keep idle CPUs polling (measure the machine's default idle)",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--naive-calls",
        type=int,
        default=1,
        help="calls through the naive pipeline (default 1: on 2 cores it already loses most"
        " frames at 2 calls, and its CPU per call is only meaningful where it keeps up)",
    )
    parser.add_argument("--naive-seconds", type=float, default=None, help="default: --seconds")
    parser.add_argument("--skip-naive", action="store_true", help="only the SFU worker")
    parser.add_argument(
        "--no-naive-recorder", action="store_true", help="naive pipeline without MediaRecorder"
    )
    parser.add_argument("--setup-concurrency", type=int, default=4, help="calls set up at once")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--no-sfu-recorder", action="store_true", help="forward only (no recording in our SFU)"
    )
    parser.add_argument("--per-call", action="store_true", help="print a row per call")
    parser.add_argument(
        "--full-clients",
        action="store_true",
        help="clients unprotect every packet (the tests' clients), to compare with the light ones",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.seconds <= 0 or args.repeat < 1:
        parser.error("--calls and --repeat must be >= 1 and --seconds > 0")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    naive_calls = args.naive_calls
    loads = sorted({*args.sweep, args.calls})
    started = time.monotonic()
    results: dict[str, Any] = {
        "config": {
            "calls": args.calls,
            "sweep": loads,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "naive_calls": None if args.skip_naive else naive_calls,
            "naive_recorder": not args.no_naive_recorder,
            "setup_concurrency": args.setup_concurrency,
            "sfu_recording": not args.no_sfu_recorder,
            "repeat": args.repeat,
            "light_clients": not args.full_clients,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "aiortc": aiortc.__version__,
            "platform": platform.platform(),
            "idle": idle_state(),
        },
        "phases": {},
        "sweep": [],
    }
    async with Environment(max(*loads, naive_calls), log_level=args.log_level) as env:
        recordings = env.data_dir / "var" / "recordings"  # where the node finalizes them
        runs: dict[int, list[dict[str, Any]]] = {load: [] for load in loads}
        for _round, load in itertools.product(range(args.repeat), loads):
            sfu = PhaseOptions(
                "sfu",
                "visitation.worker",
                load,
                args.seconds,
                args.warmup,
                args.setup_concurrency,
                [
                    # measure past the default admission limit when asked to
                    *("--max-calls", str(max(load, DEFAULT_MAX_CALLS))),
                    *([] if args.no_sfu_recorder else ["--recordings-dir", str(recordings)]),
                ],
                pin_cores=not args.no_pin,
                light_clients=not args.full_clients,
            )
            phase = await run_phase(env, sfu)
            runs[load].append(phase)
            if len(loads) > 1 or args.repeat > 1:
                print(phase_row(phase), flush=True)
        results["sweep"] = [median_runs(runs[load]) for load in loads]
        if args.repeat > 1:
            results["runs"] = {str(load): runs[load] for load in loads}  # every run, in --json
        results["phases"]["sfu"] = results["sweep"][loads.index(args.calls)]
        if not args.skip_naive and naive_calls > 0:
            with tempfile.TemporaryDirectory(prefix="visitation-naive-rec-") as rec:
                extra = [] if args.no_naive_recorder else ["--record-dir", rec]
                naive = PhaseOptions(
                    "naive",
                    "loadtest.naive_worker",
                    naive_calls,
                    args.naive_seconds or args.seconds,
                    args.warmup,
                    args.setup_concurrency,
                    extra,
                    pin_cores=not args.no_pin,
                    light_clients=not args.full_clients,
                )
                results["phases"]["naive"] = await run_phase(env, naive)
    results["cpu_ratio"] = cpu_ratio(results)
    results["targets"] = targets(results)
    results["ceiling"] = ceiling(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def idle_state() -> dict[str, Any]:
    """How this machine's idle CPUs sleep now: cpuidle driver and the wake-up limit in force."""
    driver = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    try:
        limit: int | None = current_limit_us()
    except OSError:
        limit = None
    return {
        "cpuidle_driver": driver.read_text().strip() if driver.exists() else None,
        "wake_latency_limit_us": limit,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    setup_logging(args.log_level)
    tune_gc()  # the clients' process forwards as many packets as the worker
    with held(None if args.idle_cpus_halt else 0):
        results = uvloop.run(run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(table(results, per_call=args.per_call))
    return 0


if __name__ == "__main__":
    sys.exit(main())
