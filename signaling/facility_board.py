"""What the call's life adds to its facility's day on the admins' board (calls settled,
places refused and why): counted in the facility's time zone, and never failing the call."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from core.directory import Directory
from core.domain import Facility
from core.facility_stats import FacilityStats
from signaling.call_state import CallRecord

log = logging.getLogger(__name__)


class FacilityBoard:
    def __init__(
        self, stats: FacilityStats, directory: Directory, clock: Callable[[], float] = time.time
    ) -> None:
        self._stats = stats
        self._directory = directory
        self._clock = clock

    async def settled(self, record: CallRecord, charged_cents: int) -> None:
        await self._count(
            record.facility_id,
            lambda facility: self._stats.settled(
                facility.id,
                facility.timezone,
                record.call_id,
                record.ended_at or self._clock(),
                record.duration_s,
                charged_cents,
            ),
        )

    async def refused(self, resident_id: str, reason: str) -> None:
        resident = await self._directory.resident(resident_id)
        if resident is not None:
            await self._count(
                resident.facility_id,
                lambda facility: self._stats.refused(facility.id, facility.timezone, reason),
            )

    async def _count(self, facility_id: str, count: Callable[[Facility], Awaitable[None]]) -> None:
        try:
            facility = await self._directory.facility(facility_id)
            if facility is not None:
                await count(facility)
        except Exception:
            log.exception("facility %s: counting for the admins' board failed", facility_id)
