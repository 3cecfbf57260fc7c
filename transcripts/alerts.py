"""Watch-word alerts for investigators (and admins) of a facility, and who has read them.

Keys (:mod:`transcripts.redis_keys`): ``alert:<alert_id>`` (JSON),
``alerts:facility:<facility_id>`` (sorted set by time), ``alerts:read:<staff_id>`` (set of alert
ids read). An alert's id is derived from the call and
the flag, so a transcript stored twice never alerts twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from core.redis_text import text
from transcripts.model import WatchHit
from transcripts.redis_keys import ALERT, ALERTS_READ, FACILITY_ALERTS

MAX_LIST: Final = 500


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    source: str = "watch_word"
    call_id: str
    facility_id: str
    resident_id: str
    family_id: str
    word: str
    party: str
    offset_s: float
    text: str
    at: float


class AlertStore:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock

    async def raise_for(
        self,
        call_id: str,
        facility_id: str,
        resident_id: str,
        family_id: str,
        hits: Sequence[WatchHit],
    ) -> list[Alert]:
        """One alert per hit (idempotent); returns those new."""
        made: list[Alert] = []
        now = self._clock()
        for hit in hits:
            flag_id = str(hit.flag()["flag_id"])
            alert = Alert(
                alert_id=f"{call_id}.{flag_id}",
                call_id=call_id,
                facility_id=facility_id,
                resident_id=resident_id,
                family_id=family_id,
                word=hit.word,
                party=hit.party,
                offset_s=hit.offset_s,
                text=hit.text[:500],
                at=now,
            )
            if await self._redis.set(ALERT(alert.alert_id), alert.model_dump_json(), nx=True):
                await self._redis.zadd(FACILITY_ALERTS(facility_id), {alert.alert_id: now})
                made.append(alert)
        return made

    async def recent(
        self, facility_ids: Sequence[str], staff_id: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The facilities' alerts, newest first, each with ``read`` for this staff member."""
        ids: list[tuple[str, float]] = []
        for facility_id in facility_ids:
            rows: Any = await self._redis.zrevrange(
                FACILITY_ALERTS(facility_id), 0, limit - 1, withscores=True
            )
            ids += [(text(i), float(s)) for i, s in rows]
        ids.sort(key=lambda row: row[1], reverse=True)
        ids = ids[:limit]
        if not ids:
            return []
        raws = await self._redis.mget([ALERT(i) for i, _ in ids])
        read = {text(r) for r in await self._redis.smembers(ALERTS_READ(staff_id))}
        out: list[dict[str, Any]] = []
        for raw in raws:
            if raw:
                alert = Alert.model_validate_json(raw)
                out.append(alert.model_dump() | {"read": alert.alert_id in read})
        return out

    async def get(self, alert_id: str) -> Alert | None:
        raw = await self._redis.get(ALERT(alert_id))
        return Alert.model_validate_json(raw) if raw else None

    async def mark_read(self, staff_id: str, alert_id: str) -> None:
        await self._redis.sadd(ALERTS_READ(staff_id), alert_id)

    async def forget_call(self, call_id: str, facility_id: str) -> int:
        """Delete the call's alerts (they quote its transcript): its recording was purged."""
        key = FACILITY_ALERTS(facility_id)
        raw: Any = await self._redis.zrange(key, 0, -1)
        ids = [text(i) for i in raw]
        gone = [i for i in ids if i.startswith(f"{call_id}.")]
        if gone:
            await self._redis.zrem(key, *gone)
            await self._redis.delete(*map(ALERT, gone))
        return len(gone)

    async def facility_ids(self) -> list[str]:
        found = [
            FACILITY_ALERTS.parse(text(k))
            async for k in self._redis.scan_iter(FACILITY_ALERTS.glob())
        ]
        return [slots[0] for slots in found if slots is not None]
