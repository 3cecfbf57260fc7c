"""The SFU control channel's Redis keys, all in the space ``sfu`` (the scheme:
:mod:`core.keyspace`; what each holds and who writes it: :mod:`media.control`)."""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind

WORKERS: Final = Key("sfu:workers", Kind.SET, "the registered SFU worker ids")
ALIVE: Final = Key(
    "sfu:alive:{worker_id}",
    Kind.STRING,
    "a worker's heartbeat: its status (JSON WorkerStatus)",
    "3 s after its last heartbeat",
)
LAST_BEATS: Final = Key(
    "sfu:last_beat",
    Kind.HASH,
    "worker id -> Unix time of its last heartbeat (until it is claimed or deregisters)",
)
METRICS: Final = Key(
    "sfu:metrics:{worker_id}",
    Kind.STRING,
    "a worker's Prometheus exposition text, served from the nodes' /metrics",
    "with its heartbeat (3 s)",
)
WORKER_CALLS: Final = Key(
    "sfu:calls:{worker_id}", Kind.SET, "the calls open on a worker (what admission counts)"
)
CALL_WORKER: Final = Key("sfu:call:{call_id}", Kind.STRING, "the worker holding a call's room")
RECORDING_REPORT: Final = Key(
    "sfu:recording:{call_id}",
    Kind.STRING,
    'what a worker reported once it closed a call\'s recording: {"problems": [...]}',
    "7 days",
)
CONTROL: Final = Key(
    "sfu:ctl:{worker_id}", Kind.LIST, "requests to a worker (JSON Request), BLPOPed by it"
)
REPLY: Final = Key(
    "sfu:reply:{request_id}",
    Kind.LIST,
    "a worker's reply to one request, BLPOPed by the caller",
    "30 s after it is written",
)
EVENTS: Final = Key(
    "sfu:events",
    Kind.STREAM,
    "worker events (connected, media_lost, closed, quality), read in group signaling",
    "capped at about 10000 entries",
)
EVENTS_DEAD: Final = Key(
    "sfu:events:dead",
    Kind.STREAM,
    "worker events no handler could take (poison), for an operator",
    "capped at about 1000 entries",
)

KEYS: Final = (
    WORKERS,
    ALIVE,
    LAST_BEATS,
    METRICS,
    WORKER_CALLS,
    CALL_WORKER,
    RECORDING_REPORT,
    CONTROL,
    REPLY,
    EVENTS,
    EVENTS_DEAD,
)
