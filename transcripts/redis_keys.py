"""The transcripts package's Redis keys (the scheme: :mod:`core.keyspace`).

Every ``tr:`` key moved to the ``transcripts`` space: a call's hash was ``tr:{call_id}``, which
the log, the sets and the workers' beats (``tr:log``, ``tr:worker:<id>``) read as calls too.
The renames run in order: the literal keys and the workers' beats leave ``tr:`` first, so the
last step (``tr:{call_id}``, which matches every ``tr:`` key) finds only the calls' hashes.
No key name is stored inside a value (the log's entries hold call ids; a node's search index
holds the log's stream ids, which a rename keeps).

Not in the scheme: Dramatiq's own keys (:data:`FOREIGN`), named by the library from
:data:`transcripts.queue.NAMESPACE` (``visitation-dramatiq:transcripts``, ``...transcripts.msgs``,
``.DQ``, ``.XQ``, ``__acks__...``, ``__heartbeats__``); a stray-key check skips them.
"""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind, Rename

TRANSCRIPT: Final = Key(
    "transcripts:call:{call_id}",
    Kind.HASH,
    "a call's transcript: status, signed body, sha256, engine, by, tries, error, costs",
)
LOG: Final = Key(
    "transcripts:log",
    Kind.STREAM,
    "one numbered entry per transcript done or deleted (what every node's index follows)",
    "trimmed to its newest 10 000 entries",
)
DONE: Final = Key("transcripts:done", Kind.SET, "the calls with a transcript done")
DEAD: Final = Key(
    "transcripts:dead",
    Kind.LIST,
    "transcription jobs given up on (JSON), newest last",
    "trimmed to the newest 10 000",
)
STATS: Final = Key(
    "transcripts:stats",
    Kind.HASH,
    "running totals: done, retried, dead_lettered, audio_s, cpu_s, logged",
)
WORKER: Final = Key(
    "transcripts:worker:{worker_id}",
    Kind.STRING,
    "a transcription worker's beat (its pid)",
    "10 s unless the worker beats again",
)
ALERT: Final = Key("alert:{alert_id}", Kind.STRING, "a watch-word alert (JSON)")
FACILITY_ALERTS: Final = Key(
    "alerts:facility:{facility_id}", Kind.ZSET, "a facility's alert ids, by when raised"
)
ALERTS_READ: Final = Key("alerts:read:{staff_id}", Kind.SET, "the alert ids a staff member read")

KEYS: Final = (TRANSCRIPT, LOG, DONE, DEAD, STATS, WORKER, ALERT, FACILITY_ALERTS, ALERTS_READ)
RENAMES: Final = (
    Rename("transcripts-log-v1", "tr:log", LOG),
    Rename("transcripts-done-v1", "tr:done", DONE),
    Rename("transcripts-dead-v1", "tr:dead", DEAD),
    Rename("transcripts-stats-v1", "tr:stats", STATS),
    Rename("transcripts-worker-v1", "tr:worker:{worker_id}", WORKER),
    Rename("transcripts-call-v1", "tr:{call_id}", TRANSCRIPT),  # last: it matches any tr: key
)
# Keys a library names (SCAN globs), outside the scheme: Dramatiq's broker (transcripts.queue).
FOREIGN: Final = ("visitation-dramatiq:*",)
