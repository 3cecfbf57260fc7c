"""Each resident's recent calls, kept by the server (the tablet's ``calls.recent``): so any
tablet the resident signs in on, a shared one included, shows the same history.

A call is added once its outcome is what the tablet itself was told: ``ended`` (with its
connected seconds), ``canceled``, or ``unanswered`` — a family's reject is added only at the
ring timeout, as ``unanswered`` (PROTOCOL.md v1.1: a resident never learns a reject).

Key: ``calls:recent:resident:{resident_id}``, a list of JSON entries, newest first, at most
:data:`KEPT` (trimmed with each add), expiring :data:`KEPT_S` after the last call.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Final, Literal

from redis.asyncio import Redis

from core.redis_text import text
from signaling.call_state import CallRecord
from signaling.redis_keys import RECENT_CALLS

KEPT: Final = 50
KEPT_S: Final = 90 * 24 * 3600

Outcome = Literal["ended", "canceled", "unanswered"]


def recent_key(resident_id: str) -> str:
    return RECENT_CALLS("resident", resident_id)


@dataclass(frozen=True)
class RecentCall:
    """One line of ``calls.recent``."""

    call_id: str
    contact_id: str  # the family's id: the tablet's contact
    placed_at: float
    outcome: Outcome
    duration_s: int


class CallHistory:
    def __init__(self, redis: Redis, kept: int = KEPT) -> None:
        self._redis = redis
        self._kept = kept

    async def add(self, record: CallRecord, outcome: Outcome) -> None:
        entry = RecentCall(
            call_id=record.call_id,
            contact_id=record.family_id,
            placed_at=record.created_at,
            outcome=outcome,
            duration_s=record.duration_s if outcome == "ended" else 0,
        )
        key = recent_key(record.resident_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, json.dumps(asdict(entry)))
            pipe.ltrim(key, 0, self._kept - 1)
            pipe.expire(key, KEPT_S)
            await pipe.execute()

    async def recent(self, resident_id: str) -> list[RecentCall]:
        """Newest first (a call added twice, e.g. by a retried step, is listed once)."""
        seen: set[str] = set()
        out: list[RecentCall] = []
        for raw in await self._redis.lrange(recent_key(resident_id), 0, self._kept - 1):
            entry = RecentCall(**json.loads(text(raw)))
            if entry.call_id not in seen:
                seen.add(entry.call_id)
                out.append(entry)
        return out
