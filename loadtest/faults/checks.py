"""The "nothing lost?" checks every fault case ends with, against the live cluster.

- the ledger invariant of every seeded account (:func:`billing_hooks.money.invariants.audit_account`),
  and no hold left once every call is over;
- each call settled exactly once: one ``settle:{call}`` ledger run, no hold left for it, one row
  in the family's call history; what it charged, for the case to compare with SPEC rule 6;
- each call's recording finalized, signed, and verified through
  ``POST /api/v1/recordings/{id}/verify``.

Each returns what is wrong as text (empty when all is well), never raises on a finding.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from billing_hooks.money.invariants import audit_account
from billing_hooks.money.ledger import LedgerEntry
from core.tariff import charge_cents
from loadtest.faults.cluster import INVESTIGATOR, Cluster
from media.control import ControlError
from media.redis_keys import WORKER_CALLS
from signaling.call_state import CallRecord, CallState

# A settlement's ledger run: a charge, a release of the rest of the hold, both, or neither (a
# void marker: the call never held anything).
SETTLEMENT_RUNS: tuple[list[str], ...] = ([], ["charge"], ["release"], ["charge", "release"])


async def ledger_problems(cluster: Cluster, *, calls_over: bool = True) -> list[str]:
    """The invariant of every seeded account; with ``calls_over``, nothing still held."""
    problems: list[str] = []
    for family in cluster.family_ids:
        audit = await audit_account(cluster.ledger, cluster.redis, family)
        problems += audit.problems
        if calls_over:
            holds = await cluster.redis.hgetall(f"acct:{family}:holds")
            if holds:
                problems.append(f"{family}: holds still out after every call ended: {holds}")
    return problems


@dataclass
class Settled:
    """How one call was settled."""

    call_id: str
    record: CallRecord | None = None
    charged_cents: int | None = None
    connected_seconds: int | None = None
    hold_cents: int = 0
    problems: list[str] = field(default_factory=list)

    def expected_charge(self) -> int | None:
        """SPEC rule 6 for what the ledger says was connected, and the call's end reason."""
        if self.record is None or self.connected_seconds is None:
            return None
        return charge_cents(
            self.connected_seconds,
            self.record.rate_cents_per_minute,
            self.record.end_reason,
            self.hold_cents,
        )


async def settlement(cluster: Cluster, call_id: str) -> Settled:
    """Was ``call_id`` ended and settled exactly once, at the SPEC rule 6 price?"""
    out = Settled(call_id)
    record = out.record = await cluster.store.get(call_id)
    if record is None:
        out.problems.append(f"call {call_id}: no call record")
        return out
    if record.state != CallState.ENDED:
        out.problems.append(f"call {call_id}: state {record.state.value}, not ended")
        return out
    family, ledger = record.family_id, cluster.ledger
    settle_ref = f"settle:{call_id}"
    marker = await ledger.find(family, settle_ref)
    if marker is None:
        out.problems.append(f"call {call_id}: never settled (no {settle_ref})")
        return out
    run = [e for e in await ledger.entries(family) if e.ref == settle_ref]
    if [e.kind for e in run] not in SETTLEMENT_RUNS:
        out.problems.append(f"call {call_id}: settlement entries {[e.kind for e in run]}")
    hold: LedgerEntry | None = await ledger.find(family, f"hold:{call_id}")
    out.hold_cents = hold.amount_cents if hold is not None and not hold.void else 0
    if await cluster.redis.hexists(f"acct:{family}:holds", call_id):
        out.problems.append(f"call {call_id}: its hold is still out")
    out.charged_cents = int(marker.meta.get("charged_cents", 0))
    out.connected_seconds = int(marker.meta.get("connected_seconds", 0))
    charged = sum(e.amount_cents for e in run if e.kind == "charge")
    if charged != out.charged_cents:
        out.problems.append(
            f"call {call_id}: charge entries take {charged}, settlement says {out.charged_cents}"
        )
    expected = out.expected_charge()
    if record.connected_at and expected != out.charged_cents:
        out.problems.append(
            f"call {call_id}: charged {out.charged_cents}, rule 6 says {expected} "
            f"({out.connected_seconds} s, {record.end_reason})"
        )
    rows = [json.loads(r) for r in await cluster.redis.lrange(f"billing:calls:{family}", 0, -1)]
    listed = sum(1 for r in rows if r.get("call_id") == call_id)
    if listed != 1:
        out.problems.append(f"call {call_id}: {listed} rows in the family's call history")
    return out


@dataclass
class RecordingCheck:
    call_id: str
    manifest: dict[str, Any] | None = None
    verified: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool | None:
        return None if self.manifest is None else bool(self.manifest.get("complete"))


async def recording(
    cluster: Cluster, http: aiohttp.ClientSession, call_id: str, timeout_s: float = 30.0
) -> RecordingCheck:
    """Wait for the call's recording to be finalized (signed), then verify it."""
    out = RecordingCheck(call_id)
    deadline = time.monotonic() + timeout_s
    while True:
        async with http.get(f"/api/v1/recordings/{call_id}") as response:
            body = await response.json(content_type=None)
            status = response.status
        if status == 200 and body.get("signature"):
            out.manifest = body
            break
        if status == 404:  # cataloged at accept, dropped at finalize if nothing was written
            out.problems.append(f"call {call_id}: no recording (none cataloged, or no media)")
            return out
        if time.monotonic() > deadline:
            state = "no recording" if status == 404 else f"HTTP {status}, not signed"
            out.problems.append(
                f"call {call_id}: recording not finalized in {timeout_s}s ({state})"
            )
            return out
        await asyncio.sleep(0.2)  # finalizing is the node's work: nothing to await but the API
    async with http.post(f"/api/v1/recordings/{call_id}/verify") as response:
        verdict = await response.json(content_type=None)
    out.verified = response.status == 200 and verdict.get("ok") is True
    if not out.verified:
        out.problems.append(f"call {call_id}: verify says {response.status} {verdict}")
    return out


async def recordings(
    cluster: Cluster, call_ids: Iterable[str], *, concurrency: int = 4, timeout_s: float = 30.0
) -> list[RecordingCheck]:
    """:func:`recording` for each call, a few at a time, through the first live node."""
    node = next(n for n in cluster.nodes if n.proc is not None and n.proc.returncode is None)
    gate = asyncio.Semaphore(concurrency)
    async with cluster.http("investigator", INVESTIGATOR, node) as http:

        async def one(call_id: str) -> RecordingCheck:
            async with gate:
                try:
                    return await recording(cluster, http, call_id, timeout_s)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    check = RecordingCheck(call_id)
                    check.problems.append(f"call {call_id}: {type(exc).__name__}: {exc}")
                    return check

        return list(await asyncio.gather(*(one(c) for c in call_ids)))


@dataclass
class Losses:
    """Everything the "nothing lost?" column says for a case."""

    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # what live workers still hold
    settled: dict[str, Settled] = field(default_factory=dict)
    recorded: dict[str, RecordingCheck] = field(default_factory=dict)

    @property
    def verified(self) -> int:
        return sum(1 for r in self.recorded.values() if r.verified)


async def nothing_lost(
    cluster: Cluster, call_ids: list[str], *, recorded: bool = True, timeout_s: float = 30.0
) -> Losses:
    """Ledger invariant, each call settled once, each recording verified; and, every call being
    over, no room or registered call left on a live worker."""
    out = Losses()
    out.problems += await ledger_problems(cluster)
    for call_id in call_ids:
        settled = out.settled[call_id] = await settlement(cluster, call_id)
        out.problems += settled.problems
    if recorded:
        for check in await recordings(cluster, call_ids, timeout_s=timeout_s):
            out.recorded[check.call_id] = check
            out.problems += check.problems
    out.leftovers = await worker_leftovers(cluster)
    return out


async def worker_leftovers(cluster: Cluster) -> list[str]:
    """Rooms (``stats``) and registered calls (``sfu:calls:{w}``, what admission counts) that
    live workers still hold; call once every call is over."""
    problems: list[str] = []
    for worker, _status in sorted((await cluster.control.live_workers()).items()):
        registered = await cluster.redis.smembers(WORKER_CALLS(worker))
        if registered:
            problems.append(f"worker {worker} still registers calls {sorted(registered)}")
        try:
            stats = await cluster.control.stats(worker)
        except ControlError as exc:
            problems.append(f"worker {worker} does not answer stats: {exc}")
            continue
        if stats["calls"] or stats["rooms"]:
            problems.append(f"worker {worker} still holds rooms {sorted(stats['rooms'])}")
    return problems
