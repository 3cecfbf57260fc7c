"""``visitation serve``: Redis (embedded or given), the signaling node, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis

from core import http_guard
from core.config import Settings, load_secret
from core.directory import Directory
from core.embedded_redis import EmbeddedRedis
from core.permissions import make_private, private_dir
from core.redis_pool import connect
from core.revocation import Revocations
from core.tokens import Tokens
from media.pool import WorkerPool
from visitation.node import SignalingNode
from visitation.seed import SeedError, apply_seed, parse_seed
from web import page_url

log = logging.getLogger(__name__)


def demo_seed_text() -> str:
    return resources.files("visitation").joinpath("demo_seed.json").read_text()


async def seed_demo(redis_url: str, tokens: Tokens, base_url: str) -> str:
    """Load the packaged demo data; return what to print for a newcomer."""
    redis = connect(redis_url)
    try:
        seed = parse_seed(demo_seed_text())
        report = await apply_seed(redis, seed)
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


async def serve(settings: Settings, demo: bool = False) -> None:
    """Run until SIGINT/SIGTERM. Settings are checked (ConfigError) before anything starts."""
    settings.demo = settings.demo or demo
    for root in dict.fromkeys([settings.data_dir, settings.recordings_path]):
        private_dir(root)
        make_private(root)  # made before files were kept private: 0700 dirs, 0600 files
    secret = load_secret(settings.data_dir)
    settings.check(secret)
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = await asyncio.to_thread(embedded.ensure_running)
    try:
        node = SignalingNode(settings, redis_url, secret)
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    runner = http_guard.runner(node.app)
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
    try:
        if settings.workers > 0:
            await pool.start(settings.workers)
            await pool.wait_ready(node.redis)
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
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("visitation shutting down", flush=True)
        ended = await node.media.end_worker_calls(pool.worker_ids, "server_shutdown")
        log.info("ended %d call(s) with server_shutdown", ended)
    finally:
        await runner.cleanup()
        await pool.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def redis_for(data_dir: Path, redis_url: str | None) -> AsyncIterator[Redis]:
    """A client of ``redis_url``, else of the data dir's embedded Redis (started if none runs,
    and then stopped again)."""
    embedded: EmbeddedRedis | None = None
    if redis_url is None:
        embedded = EmbeddedRedis(data_dir)
        redis_url = await asyncio.to_thread(embedded.ensure_running)
    redis = connect(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()
        if embedded is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(embedded.stop)


async def run_seed(path: Path, data_dir: Path, redis_url: str | None) -> str:
    from visitation.seed import seed_file

    async with redis_for(data_dir, redis_url) as redis:
        report = await seed_file(redis, path)
        return report.summary()


async def run_revoke(role: str, subject: str, data_dir: Path, redis_url: str | None) -> float:
    """``visitation revoke``: the moment before which the subject's tokens stop working."""
    async with redis_for(data_dir, redis_url) as redis:
        return await Revocations(redis).revoke(role, subject)


async def is_admin(subject: str, data_dir: Path, redis_url: str | None) -> bool:
    """Whether ``subject`` is a seeded staff member whose role is ``admin``."""
    async with redis_for(data_dir, redis_url) as redis:
        staff = await Directory(redis).staff(subject)
        return staff is not None and staff.role == "admin"


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
