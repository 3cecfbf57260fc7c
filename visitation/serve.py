"""``visitation serve``: Redis (embedded or given), the signaling node, clean shutdown.

One serve per data dir when it runs the embedded Redis (:mod:`core.data_dir_lock`); that Redis
is restarted once if it dies, and serve exits non-zero if it cannot come back
(:mod:`visitation.redis_watch`). A shutdown ends the live calls (``server_shutdown``), lets
their charges settle and recordings seal, closes every client, each step bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from redis.asyncio import Redis

from accounts.passwords import SecretHasher
from accounts.pins import Pins
from core import http_guard
from core.access_log import AccessLog, access_logger
from core.config import Settings, load_secret
from core.data_dir_lock import DataDirLock
from core.directory import Directory
from core.embedded_redis import EmbeddedRedis
from core.logs import set_context
from core.permissions import make_private, private_dir
from core.quiet_log import one_line_logger
from core.redis_pool import connect
from core.redis_sentinel import is_sentinel_url
from core.redis_version import check_url
from core.revocation import Revocations
from core.tokens import Tokens
from media.pool import WorkerPool
from transcripts.pool import TranscriberPool
from visitation.keyspace import migrate, migrate_url
from visitation.node import SignalingNode, node_name
from visitation.redis_watch import EmbeddedRedisKeeper, RedisHealth, install_health
from visitation.seed import SeedError, apply_seed, parse_seed
from web import page_url

log = logging.getLogger(__name__)


def demo_seed_text() -> str:
    return resources.files("visitation").joinpath("demo_seed.json").read_text()


#: The demo residents' PIN for the shared tablet (set by ``--demo`` only).
DEMO_PIN = "2468"


async def seed_demo(redis_url: str, tokens: Tokens, base_url: str) -> str:
    """Load the packaged demo data (and the residents' demo PIN); return what to print for a
    newcomer."""
    redis = connect(redis_url)
    try:
        seed = parse_seed(demo_seed_text())
        report = await apply_seed(redis, seed)
        pins = Pins(redis, SecretHasher())
        for resident in seed.residents:
            if not await pins.has_pin(resident.id):
                await pins.set(resident.id, DEMO_PIN)
    finally:
        await redis.aclose()
    lines = ["", "Demo data loaded: " + report.summary().replace("\n", "; "), "Demo tokens:"]
    who = [("tablet", r.id, r.name) for r in seed.residents]
    who += [("family", f.id, f.name) for f in seed.families]
    who += [(s.role, s.id, s.id) for s in seed.staff]
    issued = [(role, subject, name, tokens.issue(role, subject)) for role, subject, name in who]
    for role, subject, name, token in issued:
        lines.append(f"  {role:<12} {subject:<6} {name:<14} {token}")
    lines += ["", "Pages (open in Chromium or Chrome; calls need a camera and microphone):"]
    for role, subject, name, token in issued:
        url = page_url(base_url, role, token)
        if url is not None:
            lines.append(f"  {role:<12} {subject:<6} {name:<14} {url}")
    lines += ["", "Demo sign-in (e-mail or staff id, password):"]
    lines += [
        f"  family       {f.email:<24} {f.password}"
        for f in seed.families
        if f.email and f.password
    ]
    lines += [f"  {s.role:<12} {s.id:<24} {s.password}" for s in seed.staff if s.password]
    lines += ["", f"Shared tablets (residents sign in with their id and PIN {DEMO_PIN}):"]
    for facility in seed.facilities:
        device = tokens.issue("device", facility.id, ttl_s=7 * 24 * 3600)
        lines.append(f"  {facility.id:<6} {facility.name:<20} {base_url}/tablet?token={device}")
    if not os.environ.get("VISITATION_SMTP_URL"):
        lines += [
            "",
            "Mail: VISITATION_SMTP_URL is unset, so sign-up and reset e-mails (with their links)",
            "are written to this log.",
        ]
    lines += [
        "",
        "Next steps:",
        "  open the tablet page of R100 and the family page of F200 in two windows, call, accept;",
        "  open the monitor page of S1 to watch, and the investigator page of I1 afterwards.",
        f"  curl {base_url}/healthz",
        "",
    ]
    return "\n".join(lines)


def worker_network_args(settings: Settings) -> list[str]:
    """Every worker's ``--announce-ip`` and STUN/TURN URLs (the TURN secret goes in its
    environment, never its argv)."""
    args = ["--announce-ip", settings.announce_ip] if settings.announce_ip else []
    for url in (*settings.stun_urls, *settings.turn_urls):
        args += ["--ice-server", url]
    return args


def port_shares(settings: Settings) -> Callable[[int], list[str]] | None:
    """The n-th worker's ``--rtc-ports``: its contiguous share of the range (a worker
    respawned in the n-th place would get the same share)."""
    if settings.rtc_ports is None or settings.workers < 1:
        return None
    shares = settings.rtc_ports.split(settings.workers)
    return lambda n: ["--rtc-ports", str(shares[n % len(shares)])]


#: A lock held by a short command (``seed``, ``revoke``...) is waited for this long.
LOCK_WAIT_S = 10.0
#: Each step of a shutdown is bounded (an idle one takes about 2 s in all).
END_CALLS_S = 5.0
CLEANUP_S = 20.0  # drain the ended calls' charges (5 s), close clients, settle, seal
CLEANUP_REDIS_LOST_S = 5.0
WORKERS_STOP_S = 5.0
REDIS_STOP_S = 5.0
#: Past this, a shutdown still under way ends the process at once (see :class:`ExitDeadline`).
EXIT_DEADLINE_S = END_CALLS_S + CLEANUP_S + WORKERS_STOP_S + REDIS_STOP_S + 10.0
#: A serve started beside a running command waits this long for its Redis to answer.
HOLDER_URL_WAIT_S = 15.0


class Stop:
    """Why ``serve`` stops: a signal, or a fatal loss (then it exits non-zero)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.fatal: str | None = None

    def request(self) -> None:
        self.event.set()

    def fail(self, reason: str) -> None:
        self.fatal = self.fatal or reason
        self.event.set()


async def serve(settings: Settings, demo: bool = False) -> None:
    """Run until SIGINT/SIGTERM. Settings are checked (ConfigError) before anything starts;
    another serve on the data dir is :class:`DataDirInUse` (a ConfigError); a Redis that cannot
    come back ends it with SystemExit (non-zero)."""
    settings.demo = settings.demo or demo
    for root in dict.fromkeys([settings.data_dir, settings.recordings_path]):
        private_dir(root)
        make_private(root)  # made before files were kept private: 0700 dirs, 0600 files
    secret = load_secret(settings.data_dir)
    settings.check(secret)
    stop = Stop()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before anything starts: no signal is lost
        loop.add_signal_handler(sig, stop.request)
    # The embedded Redis's owner holds the data dir exclusively; nodes of an external Redis
    # share it (several may share a data dir), so neither kind starts beside the other.
    lock = DataDirLock(settings.data_dir)
    await asyncio.to_thread(lock.acquire, LOCK_WAIT_S, shared=settings.redis_url is not None)
    try:
        await _serve(settings, secret, demo, stop)
    finally:
        lock.release()
    if stop.fatal is not None:
        raise SystemExit(f"visitation serve: {stop.fatal}")


def web_runner(app: web.Application) -> web.AppRunner:
    """:func:`core.http_guard.runner`'s runner (what aiohttp refuses is answered in JSON, logged
    in one line), with the access log (:class:`core.access_log.AccessLog`: no query string, no
    header) and a bounded wait for open handlers: every client's connection is closed on
    shutdown, so what is left after 3 s is abandoned."""
    return http_guard.GuardedRunner(
        app,
        handle_signals=False,
        access_log=access_logger(),
        access_log_class=AccessLog,
        logger=one_line_logger("aiohttp.server"),
        shutdown_timeout=3.0,
    )


async def _serve(settings: Settings, secret: bytes, demo: bool, stop: Stop) -> None:
    deadline = ExitDeadline(EXIT_DEADLINE_S)
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = await asyncio.to_thread(embedded.ensure_running, adopt=True)
    try:  # an old server is a warning, one missing WAIT & co. a refusal (UnsupportedRedis)
        await check_url(redis_url, "visitation serve")
        await migrate_url(redis_url)  # older key names, before anything reads them
        node = SignalingNode(settings, redis_url, secret)
        set_context(node=node_name(settings))  # every line says which node wrote it
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    health: RedisHealth | None = None
    keeper: EmbeddedRedisKeeper | None = None
    if not is_sentinel_url(redis_url):  # Sentinel: /healthz pings through the node's client
        health = RedisHealth(redis_url)
        install_health(node.app, health)
        health.start()
        if embedded is not None:
            keeper = EmbeddedRedisKeeper(embedded, health, stop.fail)
            keeper.start()
    runner = web_runner(node.app)
    pool = WorkerPool(
        redis_url,
        log_level=logging.getLevelName(log.getEffectiveLevel()),
        extra_args=[
            "--recordings",
            settings.recordings_location,
            "--max-calls",
            str(settings.max_calls_per_worker),
            *worker_network_args(settings),
        ],
        args_for=port_shares(settings),
        env={"VISITATION_TURN_SECRET": settings.turn_secret} if settings.turn_secret else {},
    )
    transcribers = TranscriberPool(
        redis_url,
        settings.recordings_location,
        log_level=logging.getLevelName(log.getEffectiveLevel()),
        extra_args=["--data-dir", str(settings.data_dir)],
    )
    try:
        if settings.workers > 0:
            await pool.start(settings.workers)
            await pool.wait_ready(node.redis)
        if settings.transcribers > 0:
            await transcribers.start(settings.transcribers)
            await transcribers.wait_ready(node.redis)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        base_url = f"http://{settings.host}:{settings.port}"
        if demo:
            try:
                print(await seed_demo(redis_url, Tokens(secret), base_url), flush=True)
            except SeedError as exc:  # pragma: no cover - the packaged seed is tested
                log.error("demo seed failed: %s", exc)
        print(f"visitation serving on {base_url}", flush=True)
        await stop.event.wait()
        print("visitation shutting down", flush=True)
        deadline.start()
        if stop.fatal is None:
            with timed("ending live calls"):
                ended = await _bounded(
                    node.media.end_worker_calls(pool.worker_ids, "server_shutdown"), END_CALLS_S
                )
            log.info("ended %s call(s) with server_shutdown", ended)
    finally:
        if keeper is not None:  # a Redis stopped from now on is part of the shutdown
            await keeper.stop()
        cleanup_s = CLEANUP_S if stop.fatal is None else CLEANUP_REDIS_LOST_S
        with timed("closing clients, settling, sealing"):
            await _bounded(runner.cleanup(), cleanup_s)
        if health is not None:
            await health.stop()
        with timed("stopping sfu workers"):
            await pool.stop(WORKERS_STOP_S)
        with timed("stopping transcribers"):
            await transcribers.stop(WORKERS_STOP_S)
        if embedded is not None:
            with timed("stopping embedded redis"):
                await asyncio.to_thread(embedded.stop, REDIS_STOP_S)


T = TypeVar("T")


async def _bounded(step: Awaitable[T], timeout_s: float) -> T | None:
    """``step``'s result, or None (and a warning) if it takes longer than ``timeout_s``: then it
    is cancelled but not waited for (a step that ignores its cancel, or waits on a thread,
    must not hold the exit)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(_quietly)
    log.warning("shutdown step abandoned after %.0f s", timeout_s)
    return None


def _quietly(task: asyncio.Future[Any]) -> None:
    """An abandoned step's end: its error (after its cancel) is no news."""
    if not task.cancelled():
        task.exception()


class ExitDeadline:
    """The last resort of a shutdown: past ``after_s``, the process exits at once (code 1),
    whatever is still running (asyncio waits for every cancelled task and thread at the end)."""

    def __init__(self, after_s: float) -> None:
        self._timer = threading.Timer(after_s, self._exit, args=(after_s,))
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    @staticmethod
    def _exit(after_s: float) -> None:
        log.error("shutdown still not done after %.0f s: exiting now", after_s)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(1)


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        log.info("shutdown: %s took %.2f s", what, time.monotonic() - started)


@contextlib.asynccontextmanager
async def redis_for(
    data_dir: Path, redis_url: str | None, what: str = "command"
) -> AsyncIterator[Redis]:
    """A client of ``redis_url``, else of the data dir's embedded Redis: the running serve's
    (its lock is held), else one this command starts, holding the data dir's lock meanwhile,
    and stops again."""
    embedded: EmbeddedRedis | None = None
    lock: DataDirLock | None = None
    if redis_url is None:
        private_dir(data_dir)
        embedded = EmbeddedRedis(data_dir)
        lock = DataDirLock(data_dir, what=what)
        if await asyncio.to_thread(lock.try_acquire):
            redis_url = await asyncio.to_thread(embedded.ensure_running)
        else:  # a serve holds it: use its Redis (it may still be starting it)
            lock = None
            redis_url = await asyncio.to_thread(_holders_redis, embedded)
    redis = connect(redis_url)
    try:
        await migrate(redis)  # a command may be the first to run after an upgrade
        yield redis
    finally:
        await redis.aclose()
        if embedded is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(embedded.stop)
        if lock is not None:
            lock.release()


def _holders_redis(embedded: EmbeddedRedis, wait_s: float = HOLDER_URL_WAIT_S) -> str:
    """The URL of the embedded Redis of the data dir's lock holder, once it answers; if none
    does (the holder serves an external Redis), one of ours as before."""
    deadline = time.monotonic() + wait_s
    while (url := embedded.running_url()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return url if url is not None else embedded.ensure_running()


async def run_seed(path: Path, data_dir: Path, redis_url: str | None) -> str:
    from visitation.seed import seed_file

    async with redis_for(data_dir, redis_url, "seed") as redis:
        report = await seed_file(redis, path)
        return report.summary()


async def run_revoke(role: str, subject: str, data_dir: Path, redis_url: str | None) -> float:
    """``visitation revoke``: the moment before which the subject's tokens stop working."""
    async with redis_for(data_dir, redis_url, "revoke") as redis:
        return await Revocations(redis).revoke(role, subject)


async def is_admin(subject: str, data_dir: Path, redis_url: str | None) -> bool:
    """Whether ``subject`` is a seeded staff member whose role is ``admin``."""
    async with redis_for(data_dir, redis_url, "token") as redis:
        staff = await Directory(redis).staff(subject)
        return staff is not None and staff.role == "admin"


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
