"""The fault suite: each case breaks one real part of a running server mid-call and checks that
the product behaves as SPEC "Under load and faults" says, and that nothing was lost.

``python -m loadtest.faults [--case NAME ...] [--short] [--json [PATH]]`` (``make faults``);
the same cases, shorter, run under pytest in ``tests/system/faults``.

- :mod:`.processes`, :mod:`.cluster`: Redis, signaling nodes and SFU workers as separate OS
  processes, killed on the way out whatever happened;
- :mod:`.checks`: the "nothing lost?" checks (ledger invariant, settled once, recordings verify);
- :mod:`.sentinel`: a Redis master, its replica and three Sentinels, for the Sentinel case;
- :mod:`.kills`, :mod:`.redis_kill`, :mod:`.sentinel_kill`, :mod:`.starve`, :mod:`.webhook_down`,
  :mod:`.churn`: the cases, registered in :data:`CASES` (:data:`LABELS`: their table rows);
- :mod:`.report`: the table and the command line.
"""

from __future__ import annotations

from loadtest.faults.case import CaseFn
from loadtest.faults.churn import churn
from loadtest.faults.kills import node_kill, remote_worker_kill, worker_kill
from loadtest.faults.redis_kill import redis_kill
from loadtest.faults.sentinel_kill import redis_master_kill
from loadtest.faults.starve import cpu_starvation, disk_full
from loadtest.faults.webhook_down import webhook_down

CASES: dict[str, CaseFn] = {
    "worker_kill": worker_kill,
    "remote_worker_kill": remote_worker_kill,
    "node_kill": node_kill,
    "redis_kill": redis_kill,
    "redis_master_kill": redis_master_kill,
    "cpu_starvation": cpu_starvation,
    "disk_full": disk_full,
    "webhook_down": webhook_down,
    "churn": churn,
}

#: What each case's row in the table says it did.
LABELS: dict[str, str] = {
    "worker_kill": "SFU worker killed",
    "remote_worker_kill": "worker on another host killed",
    "node_kill": "signaling node killed",
    "redis_kill": "Redis killed (AOF restart)",
    "redis_master_kill": "Redis master killed (Sentinel)",
    "cpu_starvation": "CPU starvation",
    "disk_full": "recordings disk full",
    "webhook_down": "billing webhook down",
    "churn": "call churn",
}

__all__ = ["CASES", "LABELS"]
