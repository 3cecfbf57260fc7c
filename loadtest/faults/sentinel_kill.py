"""Case ``redis_master_kill`` ("Redis master killed (Sentinel)"): Redis is a master, a replica
and three Sentinels; the master is SIGKILLed under a live, monitored, recorded call.

Two nodes (the tablet's sockets on node0, the family's and the monitor's on node1, so every
call event crosses the Socket.IO Redis manager) and one worker, all given the Sentinels, not a
Redis address. While family ``F1`` deposits and investigator ``I1`` lists recordings (every 200
answer is a ledger or an audit entry) the master is killed; the Sentinels promote the replica;
the killed server stays down until a deposit has been refused (503 ``ledger_unavailable``:
with no replica in sync, nothing is acknowledged that a second failover could lose), then comes
back as the new master's replica (as an operator or a supervisor would bring it back), and
deposits are acknowledged again.

Then: the call is still connected and its media flows; its one-minute warning and its cap
hang-up fire on durable timers after the failover, heard on both nodes (with ``cap_s``, the
short version, both are pulled forward to just after the failover; the full version waits for
the real ones of a two-minute balance); the charge is settled exactly once; every entry of the
snapshot taken before the kill and every acknowledged deposit is in the ledger; every billing
event reaches the webhook; the recording verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from client.media import RtpSink
from client.session import ProtocolClient
from loadtest.faults.case import (
    CaseResult,
    Knobs,
    ended_record,
    heard_end,
    record_of,
    wait_for,
)
from loadtest.faults.cluster import RATE_CENTS, Cluster, ClusterSpec
from loadtest.faults.kills import CAP_LATE_S, pull_cap_forward
from loadtest.faults.redis_kill import (
    Acks,
    acked_after,
    acknowledged_writes,
    check_acknowledged,
    events_and_losses,
    snapshot,
)
from loadtest.faults.sentinel import SentinelSet
from loadtest.faults.webhook import WebhookReceiver
from loadtest.harness import Call, setup_call
from signaling.call_machine import WARNING
from signaling.timers import TIMERS_KEY, timer_member

FAILOVER_DEADLINE_S = 60.0  # a deadline for the Sentinels, not an expectation (~2-3 s)
WARNING_AFTER_S = 1.0  # short version: the warning this long after recovery, the cap later
CAP_AFTER_S = 5.0
SIO_CHANNEL = "visitation-sio-0"
DEGRADED_DEADLINE_S = 30.0  # the old master stays down until a deposit has been refused
UNCONFIRMED = "deposit HTTP 503"  # ledger_unavailable: no replica confirmed it


async def redis_master_kill(knobs: Knobs, result: CaseResult) -> None:
    secret = secrets.token_hex(16)
    env = {"VISITATION_BILLING_WEBHOOK_URL": "", "VISITATION_BILLING_WEBHOOK_SECRET": secret}
    async with WebhookReceiver(secret.encode()) as receiver:
        env["VISITATION_BILLING_WEBHOOK_URL"] = receiver.url
        spec = ClusterSpec(
            parties=2,
            nodes=2,
            sentinel=True,
            balances={0: 2 * RATE_CENTS},  # two minutes: a warning at 60 s, the cap at 120 s
            node_env=env,
            keep_dir=knobs.keep_dir,
        )
        async with Cluster(spec) as cluster:
            cluster.routes = {"tablet": 0, "family": 1, "monitor": 1}
            call = await setup_call(cluster, 0)
            try:
                if result.expect(call.ok, f"call set-up failed: {call.error}"):
                    await _run(cluster, knobs, result, receiver, call)
            finally:
                await call.close()


async def _run(
    cluster: Cluster, knobs: Knobs, result: CaseResult, receiver: WebhookReceiver, call: Call
) -> None:
    sentinels = cluster.sentinels
    assert sentinels is not None
    call_id = call.call_id
    record = await record_of(cluster, call_id)
    result.saw(
        f"connected on a master, a replica and 3 Sentinels; a {record.allowed_seconds} s cap"
    )
    await _kill_and_follow(cluster, sentinels, knobs, result)
    record = await record_of(cluster, call_id)
    result.expect(record.live, f"the call ended during the failover ({record.end_reason})")
    if not record.live:
        await events_and_losses(cluster, result, receiver, call_id)
        return
    assert call.family_peer is not None
    video = call.family_peer.sinks["video"]
    packets = video.packets
    flowing = await wait_for(_more_than(video, packets), 10.0)
    result.saw("the call went on, media flowing" if flowing else "the call went on, media stuck")
    result.expect(flowing, "no media reached the family after the failover")
    warn_due, cap_due = record.ends_at - 60, record.ends_at
    if knobs.cap_s is not None:
        warn_due, cap_due = time.time() + WARNING_AFTER_S, time.time() + CAP_AFTER_S
        await pull_cap_forward(cluster, call_id, cap_due)
        moved = await cluster.redis.zadd(
            TIMERS_KEY, {timer_member(WARNING, call_id): int(warn_due * 1000)}, xx=True, ch=True
        )
        result.expect(moved == 1, "the call has no warning timer to move")
        result.saw("warning and cap pulled forward to just after the failover")
    await _warning_and_hang_up(cluster, result, call, warn_due, cap_due)
    result.details["expected_events"].append(f"call.warning:{call_id}")
    await events_and_losses(cluster, result, receiver, call_id)


async def _kill_and_follow(
    cluster: Cluster, sentinels: SentinelSet, knobs: Knobs, result: CaseResult
) -> None:
    async with acknowledged_writes(cluster) as acks:
        await asyncio.sleep(knobs.redis_ack_s)  # acknowledged writes pile up meanwhile
        before = await snapshot(cluster)
        acked = (len(acks.deposits), acks.lists)
        old = await sentinels.kill_master()
        killed_at = time.time()
        new = await sentinels.wait_failover(old, FAILOVER_DEADLINE_S)
        promoted_at = time.time()
        # No replica yet: a deposit must be refused (503), never acknowledged unconfirmed.
        degraded = await wait_for(_refused(acks), DEGRADED_DEADLINE_S)
        refused_degraded = dict(acks.refused)
        await sentinels.rejoin(old, FAILOVER_DEADLINE_S)
        rejoined_at = time.time()
        recovered = await wait_for(acked_after(acks, rejoined_at), 30.0)
        recovered_at = time.time()
        listening = await wait_for(lambda: _subscribers(cluster, len(cluster.nodes)), 30.0)
    result.saw(
        f"{acked[0]} deposits and {acked[1]} audited lists acknowledged before the SIGKILL of "
        f"{old.name}; {new.name} promoted {promoted_at - killed_at:.1f} s later; {old.name} back "
        f"as its replica {rejoined_at - promoted_at:.1f} s after that; deposits acknowledged "
        + (f"again {recovered_at - rejoined_at:.1f} s later" if recovered else "never again")
    )
    result.details |= {
        "failover_s": round(promoted_at - killed_at, 2),
        "rejoin_s": round(rejoined_at - promoted_at, 2),
        "refused_without_replica": refused_degraded,
    }
    result.expect(degraded, "no deposit was refused while the new master had no replica")
    result.expect(recovered, "no deposit acknowledged within 30 s of a replica rejoining")
    result.expect(listening, "the nodes' Socket.IO managers did not subscribe again")
    if acks.refused:
        result.saw(f"refused meanwhile (never acknowledged): {dict(acks.refused)}")
    await check_acknowledged(cluster, result, acks, before)


async def _warning_and_hang_up(
    cluster: Cluster, result: CaseResult, call: Call, warn_due: float, cap_due: float
) -> None:
    parties = {"tablet (node0)": call.tablet, "family (node1)": call.family}
    margin = max(0.0, cap_due - time.time()) + 15.0
    warned = [await _next(client, "call.warning", margin) for client in parties.values()]
    warned_at = time.time()
    ended = [await heard_end(client, margin) for client in parties.values()]
    record = await ended_record(cluster, call.call_id, margin)
    late = record.ended_at - cap_due if record.ended_at else None
    heard = {name: e and e.get("reason") for name, e in zip(parties, ended, strict=True)}
    result.saw(
        f"warning heard by {sum(w is not None for w in warned)}/2 parties "
        f"(by {warned_at - warn_due:+.1f} s); call ended {record.end_reason or 'never'}"
        + (f" {late:+.2f} s from its due time" if late is not None else "")
        + f"; heard {heard}"
    )
    result.expect(all(w is not None for w in warned), f"call.warning heard: {warned}")
    result.expect(record.end_reason == "time_limit", f"ended {record.end_reason or 'never'}")
    result.expect(
        late is not None and -0.5 <= late <= CAP_LATE_S,
        f"hung up {late} s from the due time (allowed: within {CAP_LATE_S} s)",
    )
    result.expect(
        all(reason == "time_limit" for reason in heard.values()), f"call.ended heard: {heard}"
    )
    family_end = ended[1] or {}
    result.expect("charged_cents" in family_end, "the family's call.ended has no charge")


async def _next(client: ProtocolClient, event: str, timeout_s: float) -> dict[str, Any] | None:
    with contextlib.suppress(TimeoutError):
        found: dict[str, Any] = await client.next(event, timeout=timeout_s)
        return found
    return None


def _more_than(sink: RtpSink, packets: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return bool(sink.packets > packets)

    return probe


def _refused(acks: Acks) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return acks.refused[UNCONFIRMED] > 0

    return probe


async def _subscribers(cluster: Cluster, count: int) -> bool:
    """Both nodes' Socket.IO managers subscribed again (on the new master)."""
    with contextlib.suppress(Exception):
        found = await cluster.redis.pubsub_numsub(SIO_CHANNEL)
        return bool(found and int(found[0][1]) >= count)
    return False
