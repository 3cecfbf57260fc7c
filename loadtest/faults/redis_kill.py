"""Case 3: Redis SIGKILLed mid-call and restarted from its AOF.

While a call runs, the suite keeps making acknowledged writes through the public API: family
``F1`` deposits (each 200 answer is a ledger entry and a ``deposit`` billing event) and
investigator ``I1`` lists recordings (each 200 answer is an audit entry). It snapshots the
ledger and the audit stream, SIGKILLs Redis (no shutdown, no AOF rewrite), restarts it from the
same config and AOF, and waits until writes are acknowledged again. Then nothing acknowledged
may be missing: every entry of the snapshot, every acknowledged deposit and list, and (after
the call is hung up) every billing event, delivered to the webhook receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from core.redis_text import text
from loadtest.faults.case import (
    CaseResult,
    Knobs,
    add_checks,
    add_losses,
    heard_end,
    record_of,
    wait_for,
)
from loadtest.faults.checks import RecordingCheck, nothing_lost
from loadtest.faults.cluster import INVESTIGATOR, Cluster, ClusterSpec
from loadtest.faults.webhook import WebhookReceiver
from loadtest.harness import setup_call
from recorder.redis_keys import AUDIT_LOG

DEPOSITOR = "F1"
DEPOSIT_CENTS = 200


@dataclass
class Acks:
    deposits: list[str] = field(default_factory=list)  # Idempotency-Keys answered 200
    lists: int = 0  # recording lists answered 200 (one audit entry each)
    last_at: float = 0.0
    refused: Counter[str] = field(default_factory=Counter)


async def deposit_loop(cluster: Cluster, acks: Acks, stop: asyncio.Event) -> None:
    async with cluster.http("family", DEPOSITOR) as http:
        n = 0
        while not stop.is_set():
            key, n = f"fault-{n}", n + 1
            try:
                async with http.post(
                    "/api/v1/account/deposits",
                    json={"amount_cents": DEPOSIT_CENTS},
                    headers={"Idempotency-Key": key},
                ) as response:
                    await response.read()
                    if response.status == 200:
                        acks.deposits.append(key)
                        acks.last_at = time.time()
                    else:
                        acks.refused[f"deposit HTTP {response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                acks.refused[f"deposit {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)


async def list_loop(cluster: Cluster, acks: Acks, stop: asyncio.Event) -> None:
    async with cluster.http("investigator", INVESTIGATOR) as http:
        while not stop.is_set():
            try:
                async with http.get(f"/api/v1/recordings?facility_id={cluster.facility}") as r:
                    await r.read()
                    if r.status == 200:
                        acks.lists += 1
                    else:
                        acks.refused[f"list HTTP {r.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                acks.refused[f"list {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def acknowledged_writes(cluster: Cluster) -> AsyncIterator[Acks]:
    """Deposits and audited lists made in a loop (each acknowledged one counted) for as long
    as the block runs; both loops are stopped and awaited on the way out."""
    acks, stop = Acks(), asyncio.Event()
    writers = [
        asyncio.create_task(deposit_loop(cluster, acks, stop)),
        asyncio.create_task(list_loop(cluster, acks, stop)),
    ]
    try:
        yield acks
    finally:
        stop.set()
        await asyncio.gather(*writers, return_exceptions=True)


@dataclass
class Snapshot:
    entries: dict[str, list[str]]  # family -> raw ledger entries, oldest first
    audit: dict[str, dict[str, str]]  # audit stream id -> fields


async def snapshot(cluster: Cluster) -> Snapshot:
    redis = cluster.redis
    entries = {
        f: [text(e) for e in await redis.lrange(f"acct:{f}:entries", 0, -1)]
        for f in cluster.family_ids
    }
    rows: Any = await redis.xrange(AUDIT_LOG(), "-", "+")
    audit = {text(i): {text(k): text(v) for k, v in fields.items()} for i, fields in rows or []}
    return Snapshot(entries, audit)


def missing_since(before: Snapshot, after: Snapshot) -> list[str]:
    """What ``before`` held that ``after`` does not (entries are immutable, only appended)."""
    problems: list[str] = []
    for family, old in before.entries.items():
        new = after.entries.get(family, [])
        if new[: len(old)] != old:
            kept = sum(1 for a, b in zip(old, new, strict=False) if a == b)
            problems.append(f"{family}: {len(old) - kept} of {len(old)} ledger entries lost")
    gone = [i for i, fields in before.audit.items() if after.audit.get(i) != fields]
    if gone:
        problems.append(f"{len(gone)} of {len(before.audit)} audit entries lost: {gone[:5]}")
    return problems


async def _redis_answers(cluster: Cluster) -> bool:
    with contextlib.suppress(RedisError, OSError):
        return bool(await cluster.redis.ping())
    return False


async def redis_kill(knobs: Knobs, result: CaseResult) -> None:
    secret = secrets.token_hex(16)
    env = {"VISITATION_BILLING_WEBHOOK_URL": "", "VISITATION_BILLING_WEBHOOK_SECRET": secret}
    async with WebhookReceiver(secret.encode()) as receiver:
        env["VISITATION_BILLING_WEBHOOK_URL"] = receiver.url
        spec = ClusterSpec(parties=2, node_env=env, keep_dir=knobs.keep_dir)
        async with Cluster(spec) as cluster:
            call = await setup_call(cluster, 0)
            try:
                if result.expect(call.ok, f"call set-up failed: {call.error}"):
                    await _kill_and_compare(cluster, knobs, result, receiver, call.call_id)
                    record = await record_of(cluster, call.call_id)
                    result.saw(f"call {record.state.value} after the restart")
                    hung_up = record.live
                    if hung_up:
                        with contextlib.suppress(Exception):
                            await call.tablet.hangup(call.call_id)
                        heard = await heard_end(call.family, 15.0)
                        result.expect(heard is not None, "no call.ended after the hang-up")
                    rec = await events_and_losses(cluster, result, receiver, call.call_id)
                    if hung_up and rec is not None:  # written whole, closed normally
                        result.expect(
                            rec.complete is True,
                            "a call hung up normally after Redis came back has a recording "
                            f"marked complete={rec.complete}",
                        )
            finally:
                await call.close()


async def _kill_and_compare(
    cluster: Cluster, knobs: Knobs, result: CaseResult, receiver: WebhookReceiver, call_id: str
) -> None:
    async with acknowledged_writes(cluster) as acks:
        await asyncio.sleep(knobs.redis_ack_s)  # acknowledged writes pile up meanwhile
        before = await snapshot(cluster)
        acked = (len(acks.deposits), acks.lists)
        await cluster.redis_server.kill()
        killed_at = time.time()
        await cluster.redis_server.restart()
        back_at = time.time()
        recovered = await wait_for(acked_after(acks, back_at), 30.0)
        recovered_at = time.time()
    result.saw(
        f"{acked[0]} deposits and {acked[1]} audited lists acknowledged before the SIGKILL; "
        f"Redis back from its AOF in {back_at - killed_at:.2f} s; deposits acknowledged again "
        + (f"{recovered_at - back_at:.1f} s later" if recovered else "never (30 s)")
    )
    result.expect(recovered, "no deposit acknowledged within 30 s of Redis's restart")
    if acks.refused:
        result.saw(f"refused during the outage: {dict(acks.refused)}")
    await wait_for(lambda: _redis_answers(cluster), 10.0)
    await check_acknowledged(cluster, result, acks, before)


async def check_acknowledged(
    cluster: Cluster, result: CaseResult, acks: Acks, before: Snapshot
) -> None:
    """Nothing acknowledged is missing: every entry of ``before``, every acknowledged deposit
    and audited list (and, later, every deposit's billing event: ``expected_events``)."""
    result.details["acks"] = {"deposits": len(acks.deposits), "lists": acks.lists}
    after = await snapshot(cluster)
    problems = missing_since(before, after)
    for key in acks.deposits:
        if not await cluster.ledger.has_ref(DEPOSITOR, f"deposit:{key}"):
            problems.append(f"acknowledged deposit {key} is not in the ledger")
    lists = sum(
        1
        for fields in after.audit.values()
        if fields.get("action") == "list" and fields.get("staff_id") == INVESTIGATOR
    )
    if lists < acks.lists:
        problems.append(f"{acks.lists} lists acknowledged, {lists} audit entries of them")
    add_losses(result, problems, "acknowledged ledger entries, deposits and audit entries")
    result.details["expected_events"] = [f"deposit:{DEPOSITOR}:{k}" for k in acks.deposits]


def acked_after(acks: Acks, at: float) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return acks.last_at > at

    return probe


async def events_and_losses(
    cluster: Cluster, result: CaseResult, receiver: WebhookReceiver, call_id: str
) -> RecordingCheck | None:
    expected = set(result.details.pop("expected_events", []))
    expected |= {f"{kind}:{call_id}" for kind in ("call.authorized", "call.connected")}
    expected.add(f"call.settled:{call_id}")
    delivered = await receiver.wait_for(expected, 60.0)
    missing = sorted(expected - set(receiver.received))
    result.saw(
        f"{len(expected & set(receiver.received))}/{len(expected)} billing events delivered"
        + ("" if delivered else f"; missing {missing[:5]}")
    )
    add_losses(result, [f"billing event {m} never delivered" for m in missing], "billing events")
    losses = await nothing_lost(cluster, [call_id])
    add_checks(result, losses, "ledger invariant, settled once, recording")
    rec = losses.recorded.get(call_id)
    if rec is not None:
        result.saw(f"recording complete={rec.complete}, verified={rec.verified}")
    return rec
