"""The fault suite's cases (:mod:`loadtest.faults`), each shorter than ``make faults`` runs it
(:meth:`loadtest.faults.case.Knobs.short`: a 12 s call before the worker dies, the cap pulled
to 12 s, 5 s of CPU starvation or webhook outage, 30 calls of churn), against real processes:
an embedded Redis (or a Sentinel set), ``visitation serve`` nodes and SFU workers of its own
per case.

- ``worker_kill``: a killed worker's call ends within 5 s, charged for connected time only,
  its recording ``complete: false`` and verified;
- ``remote_worker_kill``: the same for a worker on another host (a network namespace reaching
  Redis and an S3 server over its link) whose host is lost (SIGKILL and link down): what it
  had uploaded is sealed and verifies;
- ``node_kill``: the surviving node hangs up a killed node's call at its cap (within 2 s);
- ``redis_kill``: a Redis restart from its AOF keeps every acknowledged write and event;
- ``redis_master_kill``: Redis behind Sentinel (master, replica, three Sentinels), its master
  SIGKILLed under a live call: the nodes and the worker follow the promoted replica, the call
  goes on, its warning and cap hang-up fire, it is settled once, no acknowledged deposit or
  billing event is lost, and no deposit is acknowledged while no replica can confirm it;
- ``cpu_starvation``: busy processes taking the server's core end no call;
- ``disk_full``: a full recordings disk leaves a recording marked incomplete;
- ``webhook_down``: billing events queued while the webhook is down are all delivered;
- ``churn``: call churn leaves the worker as it found it (memory, rooms).

Each asserts everything its case checks; a failure prints what happened and what was lost.
"""

from __future__ import annotations

import pytest

from loadtest.faults import CASES
from loadtest.faults.case import Knobs, run_case


@pytest.mark.parametrize("name", list(CASES))
async def test_fault_case(name: str) -> None:
    result = await run_case(name, CASES[name], Knobs.short())
    assert result.passed, result.describe()
