"""One SFU worker process: ``python -m visitation.worker --redis-url URL [--worker-id ID]``.

Wires :class:`media.worker.SfuWorker` into a process: the command line, the recordings store,
signals and uvloop. On SIGTERM it closes every room (``closed`` events, reason ``shutdown``),
deregisters and exits 0; SIGINT does the same unless the worker runs under a pool
(``--parent-pid``), whose parent ends its calls first and then sends SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import uvloop

from core.logs import set_context, setup_logging
from core.redis_pool import connect
from core.redis_version import UnsupportedRedis, check_url
from core.runtime import tune_gc
from media.admission import DEFAULT_MAX_CALLS
from media.codec_guard import CodecCounters
from media.control import ALIVE_TTL_MS, HEARTBEAT_S
from media.ice import add_network_arguments, check_aioice, parse_network_arguments
from media.wake_latency import held, parse_us
from media.worker import SfuWorker, default_worker_id
from recorder.storage import open_storage

log = logging.getLogger("media.worker")  # the worker's log name, as before the split


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m visitation.worker", description=__doc__)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="default: $REDIS_URL"
    )
    parser.add_argument("--worker-id", default=None, help="default: host-pid-random")
    parser.add_argument("--log-level", default=os.environ.get("VISITATION_LOG_LEVEL", "INFO"))
    add_network_arguments(parser)
    parser.add_argument("--heartbeat-s", type=float, default=HEARTBEAT_S)
    parser.add_argument("--alive-ttl-ms", type=int, default=ALIVE_TTL_MS)
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when it goes away")
    parser.add_argument(
        "--max-calls",
        type=int,
        default=None,
        help=f"calls this worker admits (default {DEFAULT_MAX_CALLS}: what the benchmark shows"
        " one core carries, less a margin; lowered to what --rtc-ports holds)",
    )
    parser.add_argument(
        "--recordings",
        "--recordings-dir",
        dest="recordings",
        default=os.environ.get("VISITATION_RECORDINGS_URL")
        or os.environ.get("VISITATION_RECORDINGS_DIR"),
        help="record every non-privileged call here, shared with the signaling tier: a "
        "directory, or s3://bucket/prefix (endpoint and credentials from AWS_*); default: "
        "$VISITATION_RECORDINGS_URL, else $VISITATION_RECORDINGS_DIR",
    )
    parser.add_argument(
        "--cpu-wake-latency-us",
        type=_wake_latency_us,
        default=os.environ.get("VISITATION_CPU_WAKE_LATENCY_US") or None,
        help="while the worker runs, keep idle CPUs out of sleep states slower to leave than "
        "this (0: idle CPUs poll; Linux PM QoS, needs root): on machines whose idle CPUs halt "
        "it makes a packet after a pause as cheap as one in a burst. Default: "
        "$VISITATION_CPU_WAKE_LATENCY_US, else no limit",
    )
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("--redis-url (or REDIS_URL) is required")
    if args.max_calls is not None and args.max_calls < 1:
        parser.error("--max-calls must be at least 1")
    args.worker_id = args.worker_id or default_worker_id()
    parse_network_arguments(parser, args, args.worker_id)  # sets the default --max-calls
    return args


def _wake_latency_us(text: str) -> int:
    try:
        return parse_us(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def run(args: argparse.Namespace) -> int:
    counters = CodecCounters().install()
    worker_id: str = args.worker_id
    if args.network.active:
        check_aioice()
    try:
        recordings = open_storage(args.recordings) if args.recordings else None
    except (OSError, ValueError) as exc:
        log.error(
            "sfu worker %s: cannot open the recordings %s: %s", worker_id, args.recordings, exc
        )
        return 1
    try:
        await check_url(args.redis_url, f"sfu worker {worker_id}")
    except UnsupportedRedis as exc:
        log.error("sfu worker %s refuses its Redis: %s", worker_id, exc)
        if recordings is not None:
            await asyncio.to_thread(recordings.close)
        return 1
    redis = connect(args.redis_url)
    worker = SfuWorker(
        redis,
        worker_id,
        redis_url=args.redis_url,
        counters=counters,
        ice_servers=args.ice_servers,
        network=args.network,
        heartbeat_s=args.heartbeat_s,
        alive_ttl_ms=args.alive_ttl_ms,
        parent_pid=args.parent_pid,
        recordings=recordings,
        max_calls=args.max_calls,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stopped.set)
    if args.parent_pid is None:
        loop.add_signal_handler(signal.SIGINT, worker.stopped.set)
    else:  # a terminal's Ctrl-C reaches the whole group: let the parent decide (SIGTERM)
        loop.add_signal_handler(signal.SIGINT, lambda: None)
    tune_gc()  # after imports and set-up: the collector was a third of the CPU at 4 calls
    try:
        await worker.start()
    except Exception as exc:
        log.error("sfu worker %s cannot start: %s", worker_id, exc)
        await redis.aclose()
        if recordings is not None:
            await asyncio.to_thread(recordings.close)
        return 1
    try:
        await worker.stopped.wait()
        log.info("sfu worker %s shutting down", worker_id)
    finally:
        await worker.stop()
        await redis.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    setup_logging(
        args.log_level,
        text_format="%(asctime)s %(levelname)s sfu[%(process)d] %(name)s: %(message)s",
    )
    set_context(worker=args.worker_id)  # every line names its worker (JSON: a field)
    with held(args.cpu_wake_latency_us):
        return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
