"""Case 6: the billing webhook receiver down for a while, calls and a deposit meanwhile.

The node POSTs billing events from its durable outbox (``VISITATION_BILLING_WEBHOOK_URL``) to a
receiver this suite runs. One call goes through while it is up (the pipeline works); then the
receiver stops for ``webhook_down_s``, during which ``webhook_calls`` calls are placed, connected
and hung up and ``F0`` makes a deposit; then it comes back on the same port. Every event must
then be delivered: counted by event id, exactly the expected set (each call's
``call.authorized``, ``call.connected`` and ``call.settled``, the ``deposit``), nothing else,
none dead-lettered, the outbox drained.
"""

from __future__ import annotations

import secrets
import time

from loadtest.faults.case import CaseResult, Knobs, add_checks, add_losses, until, wait_for
from loadtest.faults.checks import nothing_lost
from loadtest.faults.cluster import Cluster, ClusterSpec
from loadtest.faults.webhook import WebhookReceiver
from loadtest.harness import Call, hang_up, setup_call

OUTBOX = "billing:outbox"
DELIVERY_AFTER_RESTART_S = 90.0  # the outbox backs off up to 60 s between attempts


def call_events(call_id: str) -> set[str]:
    return {f"{kind}:{call_id}" for kind in ("call.authorized", "call.connected", "call.settled")}


async def _short_call(cluster: Cluster, index: int, result: CaseResult) -> Call:
    call = await setup_call(cluster, index, watch=False)
    if result.expect(call.ok, f"call {index} set-up failed: {call.error}"):
        await hang_up(call)
    else:
        await call.close()
    return call


async def webhook_down(knobs: Knobs, result: CaseResult) -> None:
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret.encode())
    env = {"VISITATION_BILLING_WEBHOOK_URL": receiver.url}
    env["VISITATION_BILLING_WEBHOOK_SECRET"] = secret
    spec = ClusterSpec(parties=knobs.webhook_calls + 1, node_env=env, keep_dir=knobs.keep_dir)
    await receiver.start()
    try:
        async with Cluster(spec) as cluster:
            first = await _short_call(cluster, 0, result)
            expected = call_events(first.call_id)
            up = await receiver.wait_for(expected, 30.0)
            result.expect(up, "the first call's events never reached the receiver while it was up")
            await receiver.stop()
            down_at = time.time()
            calls = [
                await _short_call(cluster, i, result) for i in range(1, knobs.webhook_calls + 1)
            ]
            key = f"during-outage-{secrets.token_hex(4)}"
            async with cluster.http("family", "F0") as http:
                async with http.post(
                    "/api/v1/account/deposits",
                    json={"amount_cents": 500},
                    headers={"Idempotency-Key": key},
                ) as response:
                    result.expect(response.status == 200, f"deposit answered {response.status}")
            for call in calls:
                expected |= call_events(call.call_id)
            expected.add(f"deposit:F0:{key}")
            queued = await cluster.redis.xlen(OUTBOX)
            await until(down_at + knobs.webhook_down_s)  # the outage's length, not a state
            during = len(set(receiver.received) - call_events(first.call_id))
            await receiver.start()
            back_at = time.time()
            result.saw(
                f"receiver down {back_at - down_at:.0f} s: {len(calls)} calls and a deposit made, "
                f"{queued} events queued in the outbox, {during} delivered meanwhile"
            )
            delivered = await receiver.wait_for(expected, DELIVERY_AFTER_RESTART_S)
            result.saw(
                f"after the restart: {len(expected & set(receiver.received))}/{len(expected)} "
                f"expected events delivered"
                + (f" within {time.time() - back_at:.1f} s" if delivered else "")
            )
            await _event_checks(cluster, result, receiver, expected)
            ids = [c.call_id for c in [first, *calls] if c.call_id]
            losses = await nothing_lost(cluster, ids)
            add_checks(result, losses, "ledger invariant, settled once, recordings")
    finally:
        await receiver.stop()


async def _event_checks(
    cluster: Cluster, result: CaseResult, receiver: WebhookReceiver, expected: set[str]
) -> None:
    got = set(receiver.received)
    problems = [f"billing event {e} never delivered" for e in sorted(expected - got)]
    problems += [
        f"unexpected billing event {e} ({receiver.types[e]})" for e in sorted(got - expected)
    ]
    if receiver.bad_signatures:
        problems.append(f"{receiver.bad_signatures} deliveries with a bad signature")
    dead = await cluster.redis.xlen(f"{OUTBOX}:dead")
    if dead:
        problems.append(f"{dead} billing events dead-lettered")

    async def drained() -> bool:  # an entry goes after its 2xx: the receiver may be ahead
        return await cluster.redis.xlen(OUTBOX) == 0

    if not await wait_for(drained, 10.0):
        left = await cluster.redis.xlen(OUTBOX)
        problems.append(f"{left} billing events still in the outbox")
    repeats = sum(n - 1 for n in receiver.received.values())
    result.saw(
        f"{len(got)} distinct events received, {repeats} repeated deliveries (at least once), "
        f"{dead} dead-lettered"
    )
    result.details["events"] = dict(receiver.received)
    add_losses(result, problems, "billing events: exactly the expected set, by id")
