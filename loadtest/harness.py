"""The benchmark's moving parts: an embedded Redis, a signaling node, one worker, N calls.

:class:`Environment` starts a private embedded Redis (in a temp dir), seeds one 24/7 facility
with N residents, families (approved contacts) and monitors, and serves one in-process
:class:`visitation.node.SignalingNode`. :func:`run_phase` starts ONE worker process (the SFU, or
the naive pipeline) through :class:`media.pool.WorkerPool` and drives calls over the real
protocol: place -> accept -> both parties ``rtc.offer`` -> ``call.connected`` -> ``monitor.watch``,
then measures a steady window (see :mod:`loadtest.measure`) and hangs every call up.
Clients send a looping pre-encoded clip as RTP and count frames, key frames and losses at RTP
level, decoding only key frames (a content check: each party must see the other's colour). The
benchmark's clients are light (:mod:`client.light_peer`, ``light=True``): they count from the
clear RTP header and unprotect only a sample of the packets (SRTP authentication sampled, the
key frames checked decoded whole), and send each frame in one system call where the kernel
can; ``light=False`` (``--full-clients``) runs the clients every test uses. With two or more
cores the worker is pinned to core 0 and this process (clients + signaling) and Redis to the
others, so each side's CPU is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from redis.asyncio import Redis

from client.light_peer import LightMonitorPeer, LightPartyPeer
from client.media import ClipSpec
from client.peer import MonitorPeer, PartyPeer, close_all, join_call, watch_call
from client.session import ProtocolClient
from core.config import Settings
from core.domain import SeedFile
from core.embedded_redis import EmbeddedRedis, _free_port
from core.rate_limits import RateLimits
from core.redis_pool import connect
from core.tokens import Tokens
from loadtest.in_process import Node, start_node
from loadtest.measure import GcPauses, Snapshot, phase_result, take_snapshot
from media.control import SfuControl
from media.pool import WorkerPool
from media.redis_keys import WORKER_CALLS
from visitation.seed import apply_seed

log = logging.getLogger(__name__)

FACILITY = "BENCH"
TABLET_CLIP = ClipSpec(colour="red")  # 640x360 VP8 ~500 kbps @ 30 fps + Opus (SPEC load)
FAMILY_CLIP = ClipSpec(colour="blue")
CLIENT_DECODE = "keyframes"  # a sample of frames (self-contained ones) checks the content
CLIENT_SAMPLE_EVERY_S = 10.0  # light clients: one decoded key frame per sink at most this often


def setup_logging(level: str) -> None:
    """Logging for a load-generating command (the benchmark, the fault suite)."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Socket.IO clients log their own teardown at ERROR ("packet queue is empty").
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)


def cpu_layout() -> tuple[set[int], set[int]] | None:
    """(worker cores, everything else) when this machine can keep them apart."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(cores) < 2:
        return None
    return {cores[0]}, set(cores[1:])


def pin(pid: int, cores: set[int]) -> bool:
    """Pin every thread of process ``pid`` (threads it starts later inherit it)."""
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cores)
        except ProcessLookupError:
            continue  # a thread that just ended
        except OSError as exc:
            log.warning("cannot pin process %d to %s: %s", pid, sorted(cores), exc)
            return False
    return True


def bench_seed(n: int) -> SeedFile:
    """One facility open 24/7 with ``n`` resident/family/monitor triples, all approved."""
    always = [{"days": "mon-sun", "start": "00:00", "end": "24:00"}]
    return SeedFile.model_validate(
        {
            "facilities": [
                {
                    "id": FACILITY,
                    "name": "Benchmark Facility",
                    "timezone": "UTC",
                    "type": "prison",
                    "rate_cents_per_minute": 10,
                    "max_call_seconds": 3600,
                    "calling_hours": always,
                }
            ],
            "residents": [
                {"id": f"R{i}", "facility_id": FACILITY, "name": f"Resident {i}"} for i in range(n)
            ],
            "families": [
                {"id": f"F{i}", "name": f"Family {i}", "balance_cents": 1_000_000, "verified": True}
                for i in range(n)
            ],
            "contacts": [
                {"resident_id": f"R{i}", "family_id": f"F{i}", "status": "approved"}
                for i in range(n)
            ],
            "staff": [
                {"id": f"M{i}", "role": "monitor", "facility_ids": [FACILITY]} for i in range(n)
            ],
        }
    )


class ClientSource(Protocol):
    """Where a call's clients connect: :class:`Environment`, or the fault suite's cluster."""

    def client(self, role: str, subject: str) -> ProtocolClient: ...


class Environment:
    """Embedded Redis + seed + one in-process signaling node; an async context manager."""

    def __init__(self, max_calls: int, *, log_level: str = "WARNING") -> None:
        self.max_calls = max_calls
        self.log_level = log_level
        self.secret = secrets.token_hex(32).encode()
        self.tokens = Tokens(self.secret)
        self._tmp = tempfile.TemporaryDirectory(prefix="visitation-bench-")
        self.data_dir = Path(self._tmp.name)
        self._embedded = EmbeddedRedis(self.data_dir)
        self.redis_url = ""
        self.url = ""
        self._node: Node | None = None
        self.redis: Redis | None = None

    async def __aenter__(self) -> Environment:
        try:
            self.redis_url = await asyncio.to_thread(self._embedded.start)
            self.redis = connect(self.redis_url)
            await apply_seed(self.redis, bench_seed(self.max_calls))
            port = _free_port()
            settings = Settings.from_env(
                data_dir=self.data_dir / "var",
                redis_url=self.redis_url,
                port=port,
                workers=0,
                # Every client of the benchmark comes from one address, calls back to back.
                rate_limits=RateLimits().scaled(1000),
            )
            self._node = await start_node(settings, self.redis_url, self.secret)
            self.url = self._node.url
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._node is not None:
            await self._node.stop()
            self._node = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        await asyncio.to_thread(self._embedded.stop)
        self._tmp.cleanup()

    @property
    def redis_pid(self) -> int | None:
        return self._embedded.pid

    def client(self, role: str, subject: str) -> ProtocolClient:
        return ProtocolClient(self.url, self.tokens.issue(role, subject), subject)


@dataclass
class Call:
    """One benchmark call: three Socket.IO clients, three peers and their timings."""

    index: int
    tablet: ProtocolClient
    family: ProtocolClient
    monitor: ProtocolClient
    call_id: str = ""
    tablet_peer: PartyPeer | None = None
    family_peer: PartyPeer | None = None
    monitor_peer: MonitorPeer | None = None
    accept_to_connected_s: float | None = None
    monitor_first_video_s: float | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    watch: bool = True  # a monitor watches the call

    @property
    def ok(self) -> bool:
        return self.error is None and (self.monitor_peer is not None or not self.watch)

    async def close(self) -> None:
        peers = [p for p in (self.tablet_peer, self.family_peer, self.monitor_peer) if p]
        await close_all(*peers)
        for client in (self.tablet, self.family, self.monitor):
            with contextlib.suppress(Exception):
                await client.close()


async def _timed(awaitable: Any) -> float:
    await awaitable
    return time.monotonic()


def _party(spec: ClipSpec, light: bool) -> PartyPeer:
    if light:
        return LightPartyPeer(spec, decode=CLIENT_DECODE, sample_every_s=CLIENT_SAMPLE_EVERY_S)
    return PartyPeer(spec, decode=CLIENT_DECODE)


def _monitor(light: bool) -> MonitorPeer:
    if light:
        return LightMonitorPeer(decode=CLIENT_DECODE, sample_every_s=CLIENT_SAMPLE_EVERY_S)
    return MonitorPeer(decode=CLIENT_DECODE)


async def setup_call(
    env: ClientSource,
    index: int,
    timeout_s: float = 30.0,
    *,
    watch: bool = True,
    light: bool = False,
) -> Call:
    """Place, accept, offer, wait for ``call.connected``, then (``watch``) add a monitor.
    ``light``: the load generator's cheaper clients (:mod:`client.light_peer`)."""
    call = Call(
        index,
        env.client("tablet", f"R{index}"),
        env.client("family", f"F{index}"),
        env.client("monitor", f"M{index}"),
        watch=watch,
    )
    stage = "connect"
    try:
        parties = [call.family.connect(), call.tablet.connect()]
        await asyncio.gather(*parties, *([call.monitor.connect()] if watch else []))
        stage = "place"
        call.call_id = await call.tablet.place(f"F{index}")
        await call.family.next("call.incoming", timeout=timeout_s)
        call.tablet_peer = _party(TABLET_CLIP, light)
        call.family_peer = _party(FAMILY_CLIP, light)
        connected = asyncio.ensure_future(
            _timed(call.family.next("call.connected", timeout=timeout_s))
        )
        accepted_at = time.monotonic()
        try:
            stage = "accept"
            await call.family.accept(call.call_id)
            await call.tablet.next("call.accepted", timeout=timeout_s)
            stage = "rtc.offer"
            await asyncio.gather(
                join_call(call.tablet, call.call_id, call.tablet_peer),
                join_call(call.family, call.call_id, call.family_peer),
            )
            call.timings["offers_answered_s"] = time.monotonic() - accepted_at
            stage = "call.connected"
            call.accept_to_connected_s = await connected - accepted_at
            first = [
                call.tablet_peer.sinks["audio"].first_at,
                call.family_peer.sinks["audio"].first_at,
            ]
            if None not in first:  # media from each party reached the other (through the SFU)
                call.timings["media_both_ways_s"] = max(t for t in first if t) - accepted_at
        finally:
            connected.cancel()
        if not watch:
            return call
        stage = "monitor.watch"
        call.monitor_peer = _monitor(light)
        await watch_call(call.monitor, call.call_id, call.monitor_peer)
        answered = time.monotonic()
        stage = "monitor video"
        sinks = [call.monitor_peer.sinks[who]["video"] for who in ("resident", "family")]
        await asyncio.wait_for(asyncio.gather(*(s.first_frame.wait() for s in sinks)), timeout_s)
        call.monitor_first_video_s = time.monotonic() - answered
    except Exception as exc:
        call.error = f"{stage}: {type(exc).__name__}: {exc}".rstrip(": ")
        log.warning("call %d (%s) failed: %s", index, call.call_id or "-", call.error)
    return call


async def hang_up(call: Call, timeout_s: float = 10.0) -> None:
    with contextlib.suppress(Exception):
        if call.call_id:
            await call.tablet.hangup(call.call_id)
            await call.family.next("call.ended", timeout=timeout_s)
    await call.close()


async def wait_until_idle(redis: Redis, worker_id: str, timeout_s: float = 30.0) -> None:
    """Wait (bounded) until the worker has closed every call: a hang-up is acknowledged before
    the call's end-of-call chain (settle, close the room, seal the recording) has run, and a
    worker stopped before that would leave its recordings to the orphan sweep."""
    deadline = time.monotonic() + timeout_s
    while await redis.scard(WORKER_CALLS(worker_id)):
        if time.monotonic() > deadline:
            log.warning("sfu worker %s still has calls open; stopping it anyway", worker_id)
            return
        await asyncio.sleep(0.1)


@dataclass
class PhaseOptions:
    name: str  # "sfu" or "naive"
    module: str  # worker module run by WorkerPool
    calls: int
    seconds: float
    warmup_s: float = 3.0
    setup_concurrency: int = 4
    extra_args: list[str] = field(default_factory=list)
    pin_cores: bool = True
    light_clients: bool = True  # client.light_peer; False: the full clients (for comparison)


async def run_phase(env: Environment, options: PhaseOptions) -> dict[str, Any]:
    """Start one worker, run ``options.calls`` calls through it, measure, tear down."""
    assert env.redis is not None
    pool = WorkerPool(
        env.redis_url,
        log_level=env.log_level,
        id_prefix=f"bench-{options.name}-{secrets.token_hex(2)}",
        module=options.module,
        extra_args=options.extra_args,
    )
    [worker_id] = await pool.start(1)
    calls: list[Call] = []
    layout = cpu_layout() if options.pin_cores else None
    own_cores = os.sched_getaffinity(0)
    try:
        worker_pid = pool.processes[worker_id].pid
        pinned = None
        if layout is not None:
            worker_cores, other_cores = layout
            redis_pid = env.redis_pid
            if (
                pin(worker_pid, worker_cores)
                and pin(os.getpid(), other_cores)
                and (redis_pid is None or pin(redis_pid, other_cores))
            ):
                pinned = {"worker": sorted(worker_cores), "clients": sorted(other_cores)}
        client_cores = len(pinned["clients"]) if pinned else len(own_cores)
        await pool.wait_ready(env.redis)
        control = SfuControl(env.redis, timeout_s=30.0)
        gate = asyncio.Semaphore(max(1, options.setup_concurrency))
        setup_started = time.monotonic()

        async def one(index: int) -> Call:
            async with gate:
                return await setup_call(env, index, light=options.light_clients)

        with GcPauses() as pauses:
            calls = list(await asyncio.gather(*(one(i) for i in range(options.calls))))
            setup_s = time.monotonic() - setup_started
            await asyncio.sleep(options.warmup_s)
            before: Snapshot = await take_snapshot(control, worker_id, worker_pid, calls)
            await asyncio.sleep(options.seconds)
            after: Snapshot = await take_snapshot(control, worker_id, worker_pid, calls)
        result = phase_result(
            options.name, options.calls, calls, before, after, client_cores=client_cores
        )
        result["light_clients"] = options.light_clients
        result["setup_s"] = round(setup_s, 3)
        result["bench_gc_longest_pause_ms"] = round(1000 * pauses.longest_s, 1)
        result["pinned"] = pinned
        return result
    finally:
        await asyncio.gather(*(hang_up(call) for call in calls), return_exceptions=True)
        await wait_until_idle(env.redis, worker_id)
        await pool.stop()
        # The clients' closed peer connections are cyclic garbage (some 700,000 objects after
        # 25 calls): collected now, between phases, not as a 0.7 s pause of every client in
        # the next phase's set-ups (it showed as accept -> connected outliers of ~1 s).
        gc.collect()
        if layout is not None:  # this process (e.g. a test run) gets all its cores back
            pin(os.getpid(), own_cores)
            if env.redis_pid is not None:
                pin(env.redis_pid, own_cores)
