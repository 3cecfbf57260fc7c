"""What every fault case shares: its knobs, its result, and small waiting helpers.

A case's result keeps two kinds of findings apart: ``failures`` (what the case itself expects
of the product under that fault did not happen, e.g. a dead worker noticed late) and ``lost``
(the "nothing lost?" checks of :mod:`loadtest.faults.checks`). Either fails the case.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from client.session import ProtocolClient
from loadtest.faults.checks import Losses
from loadtest.faults.cluster import Cluster
from media.control import WorkerStatus
from media.redis_keys import ALIVE, WORKER_CALLS
from signaling.call_state import CallRecord


@dataclass(frozen=True)
class Knobs:
    """How long and how hard each case runs; :meth:`short` is the test suite's version."""

    worker_call_s: float = 70.0  # worker_kill: connected this long when the worker dies
    cap_s: float | None = None  # node_kill: pull time_limit to connect + cap_s (None: real cap)
    node_kill_after_s: float = 10.0  # node_kill: the node dies this long after connect
    redis_ack_s: float = 5.0  # redis_kill: acknowledged writes for this long before the kill
    starve_s: float = 20.0  # cpu_starvation: how long the hogs run
    hogs: int = 3
    starve_pin: bool = True  # hogs and the server share one core (clients keep the others)
    starve_calls: int = 3
    disk_bytes: int = 8 << 20  # disk_full: size of the recordings tmpfs
    disk_leave_bytes: int = 256 << 10  # what the filler leaves free once the call runs
    disk_after_full_s: float = 10.0  # the call goes on this long on a full disk
    webhook_down_s: float = 60.0
    webhook_calls: int = 3
    churn_calls: int = 500
    churn_warmup: int = 25
    churn_concurrency: int = 4
    churn_hold_s: float = 1.0  # each churn call stays connected this long
    keep_dir: bool = False

    @classmethod
    def short(cls) -> Knobs:
        """The same cases, shorter: each well under a minute (tests/system/faults)."""
        return cls(
            worker_call_s=12.0,
            cap_s=12.0,
            node_kill_after_s=4.0,
            redis_ack_s=2.0,
            starve_s=5.0,
            disk_after_full_s=3.0,
            webhook_down_s=5.0,
            webhook_calls=2,
            churn_calls=30,
            churn_warmup=10,
            churn_hold_s=0.5,
        )

    def but(self, **changes: Any) -> Knobs:
        return replace(self, **changes)


@dataclass
class CaseResult:
    name: str
    happened: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what "nothing lost?" covered
    seconds: float = 0.0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures and not self.lost and self.error is None

    def saw(self, text: str) -> None:
        self.happened.append(text)

    def expect(self, ok: bool, failure: str) -> bool:
        if not ok:
            self.failures.append(failure)
        return ok

    def describe(self) -> str:
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'} in {self.seconds:.1f}s"]
        lines += [f"  happened: {h}" for h in self.happened]
        lines += [f"  FAILED: {f}" for f in self.failures]
        lines += [f"  LOST: {p}" for p in self.lost]
        lines += [f"  checked: {c}" for c in self.checked]
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "happened": self.happened,
            "failures": self.failures,
            "lost": self.lost,
            "checked": self.checked,
            "error": self.error,
            "details": self.details,
        }


CaseFn = Callable[[Knobs, CaseResult], Awaitable[None]]


async def run_case(name: str, fn: CaseFn, knobs: Knobs) -> CaseResult:
    """Run one case; an exception is the case's error (with where it was raised)."""
    result = CaseResult(name)
    started = time.monotonic()
    try:
        await fn(knobs, result)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result.error = f"{type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
    result.seconds = time.monotonic() - started
    return result


async def wait_for(
    probe: Callable[[], Awaitable[bool]], timeout_s: float, interval_s: float = 0.1
) -> bool:
    """Poll ``probe`` until it is true; False at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await probe():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


async def until(at: float) -> None:
    """Let the scenario run until wall-clock ``at`` (a call's length, not a state)."""
    await asyncio.sleep(max(0.0, at - time.time()))


async def heard_end(client: ProtocolClient, timeout_s: float) -> dict[str, Any] | None:
    """The client's next ``call.ended``, or None if none came in time."""
    try:
        return await client.next("call.ended", timeout=timeout_s)
    except TimeoutError:
        return None


async def record_of(cluster: Cluster, call_id: str) -> CallRecord:
    record = await cluster.store.get(call_id)
    assert record is not None, f"no record of call {call_id}"
    return record


async def ended_record(cluster: Cluster, call_id: str, timeout_s: float) -> CallRecord:
    """The call's record once it is ended (or as it is at the deadline)."""
    latest: list[CallRecord] = []

    async def over() -> bool:
        record = await record_of(cluster, call_id)
        latest[:] = [record]
        return not record.live

    await wait_for(over, timeout_s)
    return latest[0]


class WorkerWatch:
    """While open, samples the worker's heartbeat (``sfu:alive:{w}``) every 250 ms: the worst
    event-loop lag and load it reported, how often it had no room for a call (admission), and
    how often its alive key was missing (a dead-looking worker)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        [self.worker] = cluster.worker_ids
        self.max_lag_ms = 0.0
        self.max_load = 0.0
        self.samples = self.full = self.lapses = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        redis = self.cluster.redis
        while not self._stop.is_set():
            raw = await redis.get(ALIVE(self.worker))
            self.samples += 1
            if raw is None:
                self.lapses += 1
            else:
                status = WorkerStatus.model_validate_json(raw)
                self.max_lag_ms = max(self.max_lag_ms, status.loop_lag_ms)
                self.max_load = max(self.max_load, status.load)
                calls = int(await redis.scard(WORKER_CALLS(self.worker)))
                self.full += not status.has_room(calls)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.25)

    async def __aenter__(self) -> WorkerWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def summary(self) -> str:
        return (
            f"worker loop lag up to {self.max_lag_ms:.0f} ms, load up to {self.max_load:.2f}, "
            f"no room in {self.full}/{self.samples} samples, alive key missing {self.lapses}x"
        )


def add_losses(result: CaseResult, problems: list[str], checked: str) -> None:
    result.lost += problems
    result.checked.append(checked)


def add_checks(result: CaseResult, losses: Losses, checked: str) -> None:
    """A case's :func:`loadtest.faults.checks.nothing_lost`: losses, and what workers kept."""
    add_losses(result, losses.problems, checked)
    result.failures += losses.leftovers
