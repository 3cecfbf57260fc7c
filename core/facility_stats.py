"""A facility's day in numbers, for its administrators' board: calls settled, connected
minutes, revenue, and ``call.place`` refusals by reason.

All of it lives in one Redis hash per facility and local day (the facility's time zone decides
when "today" starts), kept :data:`KEEP_DAYS`. A settled call is counted once whatever retries
settlement makes (a per-day set of counted call ids, in the same script), and on the day it
ended, so a retry after midnight cannot count it twice. Refusals are events: each is counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from core.lua import script
from core.redis_keys import FACILITY_DAY, FACILITY_DAY_CALLS
from core.redis_text import text

KEEP_DAYS: Final = 40
REFUSED: Final = "refused:"


def local_day(timezone: str, at: float) -> str:
    """``at`` (Unix seconds) as the facility's calendar date, e.g. ``2026-12-02``."""
    return datetime.fromtimestamp(at, ZoneInfo(timezone)).date().isoformat()


@dataclass(frozen=True)
class DayStats:
    day: str
    calls: int = 0  # connected calls settled
    connected_seconds: int = 0
    revenue_cents: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count

    def public(self) -> dict[str, object]:
        return {
            "date": self.day,
            "calls": self.calls,
            "minutes": round(self.connected_seconds / 60, 1),
            "revenue_cents": self.revenue_cents,
            "refused": dict(sorted(self.refused.items())),
        }


class FacilityStats:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._count_settled = redis.register_script(
            script(__package__, "facility_stats_settled.lua")
        )

    async def refused(self, facility_id: str, timezone: str, reason: str) -> None:
        key = FACILITY_DAY(facility_id, local_day(timezone, self._clock()))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, REFUSED + reason, 1)
            pipe.expire(key, KEEP_DAYS * 86400)
            await pipe.execute()

    async def settled(
        self,
        facility_id: str,
        timezone: str,
        call_id: str,
        ended_at: float,
        connected_seconds: int,
        charged_cents: int,
    ) -> None:
        """Count a connected call once, on the day it ended."""
        day = local_day(timezone, ended_at)
        keys = [FACILITY_DAY(facility_id, day), FACILITY_DAY_CALLS(facility_id, day)]
        args: list[str | int] = [
            call_id,
            max(0, connected_seconds),
            max(0, charged_cents),
            KEEP_DAYS * 86400,
        ]
        await self._count_settled(keys=keys, args=args)

    async def today(self, facility_id: str, timezone: str) -> DayStats:
        day = local_day(timezone, self._clock())
        raw = {
            text(k): int(v)
            for k, v in (await self._redis.hgetall(FACILITY_DAY(facility_id, day))).items()
        }
        return DayStats(
            day=day,
            calls=raw.get("calls", 0),
            connected_seconds=raw.get("connected_seconds", 0),
            revenue_cents=raw.get("revenue_cents", 0),
            refused={k.removeprefix(REFUSED): v for k, v in raw.items() if k.startswith(REFUSED)},
        )
