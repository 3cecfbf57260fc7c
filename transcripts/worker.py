"""A transcription worker process: ``python -m transcripts.worker`` (``visitation transcriber``).

It consumes the transcription queue (:mod:`transcripts.queue`) one job at a time, decoding the
sealed recordings from the recordings location (a directory or ``s3://``), with the engine
that ``VISITATION_STT_ENGINE`` / ``VISITATION_STT_MODEL`` choose (:mod:`transcripts.engine`),
and signs transcripts with the server secret (``VISITATION_SECRET``, else the data dir's).
It heartbeats ``transcripts:worker:<id>`` (what :class:`transcripts.pool.TranscriberPool` waits for)
and the broker's own heartbeat (so a long job is never taken for a dead worker's). SIGTERM
finishes the job in hand and exits; SIGKILL leaves it to another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any, Final

import dramatiq
from dramatiq import Worker

from core.config import load_secret
from core.directory import Directory
from core.embedded_redis import pid_alive
from core.logs import setup_logging
from core.redis_pool import connect, connect_sync
from recorder.catalog import Catalog
from recorder.storage import Storage, open_storage
from transcripts.alerts import AlertStore
from transcripts.engine import Engine, EngineError, load_engine
from transcripts.job import GiveUp, Transcriber
from transcripts.queue import ACTOR, QUEUE, QueueSettings, make_broker
from transcripts.redis_keys import WORKER
from transcripts.signing import TranscriptSigner
from transcripts.store import TranscriptStore
from transcripts.watch_words import WatchWords

log = logging.getLogger(__name__)

ALIVE_TTL_S: Final = 10
STOP_MS: Final = 10_000


class TranscriptionWorker:
    """Runs jobs in Dramatiq's worker thread; each job gets its own event loop and client."""

    def __init__(
        self,
        redis_url: str,
        worker_id: str,
        storage: Storage,
        engine: Engine,
        secret: bytes,
        settings: QueueSettings,
    ) -> None:
        self.redis_url = redis_url
        self.worker_id = worker_id
        self.storage = storage
        self.engine = engine
        self.signer = TranscriptSigner(secret)
        self.settings = settings
        self.broker = make_broker(redis_url, settings)
        declare = dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, broker=self.broker)
        declare(self.transcribe)
        self.stopped = threading.Event()
        self._sync = connect_sync(redis_url, socket_timeout=10.0)

    def transcribe(self, call_id: str) -> None:
        asyncio.run(self._transcribe(call_id))

    async def _transcribe(self, call_id: str) -> None:
        redis = connect(self.redis_url)
        store = TranscriptStore(redis)
        try:
            job = Transcriber(
                catalog=Catalog(redis),
                store=store,
                storage=self.storage,
                engine=self.engine,
                signer=self.signer,
                watch_words=WatchWords(Directory(redis)),
                alerts=AlertStore(redis),
                worker_id=self.worker_id,
                max_tries=self.settings.max_tries,
            )
            try:
                await job.run(call_id)
            except GiveUp as exc:  # its workers kept dying: no more tries, never a crash loop
                log.error("call %s: dead-lettered: %s", call_id, exc)
                await store.fail(call_id, str(exc), final=True)
            except Exception as exc:
                final = self._last_try()
                log.warning(
                    "call %s: transcription failed%s: %s",
                    call_id,
                    " (dead-lettered)" if final else ", will retry",
                    exc,
                )
                await store.fail(call_id, f"{type(exc).__name__}: {exc}", final=final)
                raise
        finally:
            await redis.aclose()

    def _last_try(self) -> bool:
        from dramatiq.middleware import CurrentMessage

        message = CurrentMessage.get_current_message()
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        return retries + 1 >= self.settings.max_tries

    def heartbeat(self) -> None:
        """Until stopped: our liveness key, and the broker's heartbeat for this worker (its
        consumer only heartbeats while fetching, which it does not while a job runs)."""
        every = min(ALIVE_TTL_S / 3, self.settings.heartbeat_timeout_s / 4)
        while not self.stopped.is_set():
            try:
                self._sync.set(WORKER(self.worker_id), os.getpid(), ex=ALIVE_TTL_S)
                self.broker.do_qsize(QUEUE)
            except Exception as exc:  # Redis away for a moment: try again
                log.warning("transcriber %s: heartbeat failed: %s", self.worker_id, exc)
            self.stopped.wait(every)

    def run(self, parent_pid: int | None = None) -> int:
        worker = Worker(self.broker, worker_threads=1, worker_timeout=500)
        worker.queue_prefetch = 1  # one job held at a time: the others stay for other workers
        beat = threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True)
        beat.start()
        worker.start()
        log.info("transcriber %s started (engine %s)", self.worker_id, self.engine.name)
        try:
            while not self.stopped.wait(0.5):
                if parent_pid is not None and not pid_alive(parent_pid):
                    log.info("transcriber %s: parent %d is gone", self.worker_id, parent_pid)
                    break
        finally:
            # A job still running after STOP_S is left unacknowledged: the broker gives it to
            # another worker once this one's heartbeat is old (as after a crash).
            worker.stop(timeout=STOP_MS)
            self.stopped.set()
            beat.join(timeout=5)
            self._sync.delete(WORKER(self.worker_id))
            self._sync.close()
            self.broker.close()
        return 0


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m transcripts.worker", description=__doc__)
    parser.add_argument(
        "--redis-url", default=env.get("REDIS_URL") or env.get("VISITATION_REDIS_URL")
    )
    parser.add_argument(
        "--recordings",
        default=env.get("VISITATION_RECORDINGS") or env.get("VISITATION_RECORDINGS_DIR"),
        help="the recordings location: a directory or s3://bucket/prefix",
    )
    parser.add_argument(
        "--data-dir",
        default=env.get("VISITATION_DATA_DIR", "var"),
        help="where the server secret is kept when VISITATION_SECRET is unset",
    )
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--log-level", default=env.get("VISITATION_LOG_LEVEL", "INFO"))
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when it goes away")
    parser.add_argument(
        "--max-tries", type=int, default=int(env.get("VISITATION_STT_MAX_TRIES", 3))
    )
    parser.add_argument("--heartbeat-timeout-s", type=float, default=30.0)
    parser.add_argument(
        "--maintenance-chance",
        type=int,
        default=20_000,
        help="per million broker commands: how often dead workers are looked for",
    )
    parser.add_argument("--retry-backoff-ms", type=int, default=2_000)
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("--redis-url (or REDIS_URL) is required")
    if not args.recordings:
        parser.error("--recordings (or VISITATION_RECORDINGS_DIR) is required")
    if args.max_tries < 1:
        parser.error("--max-tries must be at least 1")
    args.worker_id = args.worker_id or f"{socket.gethostname()}-{os.getpid()}-stt"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    setup_logging(
        args.log_level,
        text_format="%(asctime)s %(levelname)s stt[%(process)d] %(name)s: %(message)s",
    )
    try:
        engine = load_engine()
        storage = open_storage(args.recordings)
    except (EngineError, OSError, ValueError) as exc:
        log.error("transcriber cannot start: %s", exc)
        return 1
    settings = QueueSettings(
        max_tries=args.max_tries,
        heartbeat_timeout_s=args.heartbeat_timeout_s,
        maintenance_chance=args.maintenance_chance,
        min_backoff_ms=args.retry_backoff_ms,
        max_backoff_ms=max(args.retry_backoff_ms, 60_000),
    )
    worker = TranscriptionWorker(
        args.redis_url, args.worker_id, storage, engine, load_secret(Path(args.data_dir)), settings
    )

    def stop(signum: int, frame: Any) -> None:
        worker.stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop if args.parent_pid is None else signal.SIG_IGN)
    try:
        return worker.run(args.parent_pid)
    finally:
        storage.close()


if __name__ == "__main__":
    raise SystemExit(main())
