"""The agency's allowance through a node's death (SIGKILL), like the ledger: a Connecticut call
(the agency pays, 90 minutes a day) set up by node 0 with 8 s of the day left; node 0 dies
mid-call; node 1 hangs up at the cap from the durable timers and settles: the allowance is
consumed once, exactly what was talked within the cap, and nothing stays reserved. Real node
processes, a real SFU worker and Redis (loadtest/faults/cluster.py)."""

from __future__ import annotations

import json
import time

from billing_hooks.metering.allowance import Allowances
from billing_hooks.redis_keys import FAMILY_CALLS
from client.session import ProtocolClient
from core import tariff
from core.directory import Directory
from core.domain import Pricing
from loadtest.faults.case import ended_record, heard_end, record_of, until
from loadtest.faults.cluster import Cluster, ClusterSpec
from loadtest.harness import setup_call
from tests.waiting import eventually

PLAN = tariff.Plan(payer="agency", max_minutes_per_day=90)
LEFT_S = 8


async def test_a_killed_nodes_call_consumes_the_allowance_once() -> None:
    async with Cluster(ClusterSpec(parties=1, nodes=2)) as cluster:
        cluster.routes = {"tablet": 0, "family": 0, "monitor": 1}
        directory = Directory(cluster.redis)
        facility = await directory.facility(cluster.facility)
        assert facility is not None
        agency = facility.model_copy(
            update={"pricing": Pricing(payer="agency", max_minutes_per_day=90)}
        )
        async with cluster.redis.pipeline(transaction=True) as pipe:
            Directory.queue_facility(pipe, agency)
            await pipe.execute()
        store = Allowances(cluster.redis)
        earlier = 90 * 60 - LEFT_S  # today's earlier calls, settled
        await store.reserve("earlier", PLAN, facility.timezone, "R0", earlier)
        async with cluster.redis.pipeline(transaction=True) as pipe:
            period = store.period(PLAN, facility.timezone, "R0")
            await store.queue_settle(pipe, "earlier", period, cluster.facility, "-", earlier)
            await pipe.execute()

        call = await setup_call(cluster, 0)
        family_again: ProtocolClient | None = None
        try:
            assert call.ok, call.error
            record = await record_of(cluster, call.call_id)
            assert record.allowed_seconds == LEFT_S
            await until(record.connected_at + 3)  # the call's length, not a state
            await cluster.nodes[0].kill()
            family_again = ProtocolClient(
                cluster.nodes[1].url, cluster.tokens.issue("family", "F0"), "family@node1"
            )
            await family_again.connect()
            heard = await heard_end(family_again, record.ends_at - time.time() + 15)
            ended = await ended_record(cluster, call.call_id, record.ends_at - time.time() + 15)
            assert ended.end_reason == "time_limit", ended
            assert heard is not None and heard["charged_cents"] == 0

            async def settled() -> bool:
                raw = await cluster.redis.lrange(FAMILY_CALLS("F0"), 0, -1)
                return any(json.loads(r)["call_id"] == call.call_id for r in raw)

            await eventually(settled, "the killed node's call settled by node 1", within_s=60)
            [raw] = await cluster.redis.lrange(FAMILY_CALLS("F0"), 0, -1)
            billed = json.loads(raw)
            assert billed["agency_seconds"] == min(billed["duration_s"], LEFT_S) == LEFT_S
            assert billed["charged_cents"] == 0
            usage = await store.usage(PLAN, facility.timezone, "R0")
            assert (usage.used, usage.reserved) == (90 * 60, 0), "consumed once, to the cap"
            assert await store.remaining(PLAN, facility.timezone, "R0") == 0
        finally:
            if family_again is not None:
                await family_again.close()
            await call.close()
