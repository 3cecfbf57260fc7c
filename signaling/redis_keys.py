"""The signaling tier's Redis keys (the scheme: :mod:`core.keyspace`)."""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind, Rename

CALL: Final = Key(
    "call:{call_id}",
    Kind.HASH,
    "a call's record: state, parties, times, once-flags",
    "7 days after it ends",
)
CALL_FLAGS: Final = Key(
    "call:{call_id}:flags", Kind.LIST, "monitors' flags on the call (JSON)", "with the call record"
)
CALL_WATCHERS: Final = Key(
    "call:{call_id}:watchers", Kind.SET, "staff watching the call now", "with the call record"
)
LIVE_CALLS: Final = Key(
    "calls:live:{facility_id}", Kind.SET, "a facility's live call ids", "each id when its call ends"
)
RECENT_CALLS: Final = Key(
    "calls:recent:{role}:{subject}", Kind.LIST, "a party's last 50 calls (calls.recent)", "90 days"
)
BUSY: Final = Key(
    "busy:{role}:{subject}",
    Kind.STRING,
    "the call a resident or family is in (one at a time)",
    "when that call ends",
)
PRESENCE: Final = Key(
    "presence:{role}:{subject}",
    Kind.ZSET,
    "a subject's open sockets (member node:sid, scored by expiry)",
    "members 15 s after their node stops refreshing",
)
FINISH_LOCK: Final = Key(
    "finish:{call_id}", Kind.STRING, "the node finishing a call (lock token)", "15 s unless renewed"
)
TIMERS: Final = Key(
    "timers:due", Kind.ZSET, "durable timers: member kind|call_id, scored by due time (ms)"
)

KEYS: Final = (
    CALL,
    CALL_FLAGS,
    CALL_WATCHERS,
    LIVE_CALLS,
    RECENT_CALLS,
    BUSY,
    PRESENCE,
    FINISH_LOCK,
    TIMERS,
)
RENAMES: Final = (Rename("signaling-timers-v1", "timers", TIMERS),)
