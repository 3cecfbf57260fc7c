"""All Redis access for visits: the records, the holds that make booking atomic, the listings.

Keys (:mod:`visits.redis_keys`; see the headers of ``book.lua`` and ``transition.lua``):

- ``visits:v:{id}``: the visit's hash (:meth:`visits.record.Visit.to_hash`);
- ``visits:slot:{facility}:{start}``: the holding visits of one slot (its stations);
- ``visits:holds:{resident|family}:{id}``: each side's holding visits, ``end|id`` by start
  (overlaps and the weekly count);
- ``visits:all:{resident|family|facility}:{id}``: every visit by start (the listings);
- ``visits:call:{call_id}``: the visit a call was placed for.

Both scripts are loaded once per process and registered per store (``register_script``:
EVALSHA, reloaded if Redis lost it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from core.lua import script
from core.redis_text import text
from visits.record import HOLDING, Visit, VisitStatus
from visits.redis_keys import (
    CALL_VISIT,
    FACILITY_VISITS,
    FAMILY_HOLDS,
    FAMILY_VISITS,
    RESIDENT_HOLDS,
    RESIDENT_VISITS,
    SLOT,
    VISIT,
)
from visits.rules import Refusal

MAX_VISIT_S = 240 * 60  # the longest slot: how far back an overlapping visit may start
CALL_LINK_TTL_S = 2 * 86400


BOOK_LUA: Final = script("visits", "book.lua")
TRANSITION_LUA: Final = script("visits", "transition.lua")


def hold_member(visit: Visit) -> str:
    return f"{visit.end}|{visit.visit_id}"


@dataclass(frozen=True)
class Transition:
    applied: bool
    previous: str  # the status it came from (applied) or has (not applied; "" if none)


class VisitStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._book = redis.register_script(BOOK_LUA)
        self._transition = redis.register_script(TRANSITION_LUA)

    async def book(
        self, visit: Visit, *, week: tuple[int, int], concurrent: int, max_per_week: int
    ) -> None:
        """Store ``visit`` if its slot, its resident's week and both sides' time allow it,
        atomically; else raise :class:`~visits.rules.Refusal` (``conflict``,
        ``weekly_limit``, ``slot_full``)."""
        pairs: list[str] = []
        for field, value in visit.to_hash().items():
            pairs += [field, value]
        result = await self._book(
            keys=[
                VISIT(visit.visit_id),
                SLOT(visit.facility_id, visit.start),
                RESIDENT_HOLDS(visit.resident_id),
                FAMILY_HOLDS(visit.family_id),
                RESIDENT_VISITS(visit.resident_id),
                FAMILY_VISITS(visit.family_id),
                FACILITY_VISITS(visit.facility_id),
            ],
            args=[
                visit.visit_id,
                visit.start,
                visit.end,
                week[0],
                week[1],
                concurrent,
                max_per_week,
                MAX_VISIT_S,
                *pairs,
            ],
        )
        ok, code = int(result[0]), text(result[1])
        if not ok:
            if code == "exists":
                raise ValueError(f"visit {visit.visit_id!r} exists")
            raise Refusal(code)  # type: ignore[arg-type]  # the script returns only our codes

    async def get(self, visit_id: str) -> Visit | None:
        raw = await self.redis.hgetall(VISIT(visit_id))
        return Visit.from_hash(raw) if raw else None

    async def transition(
        self,
        visit: Visit,
        to: VisitStatus,
        allowed_from: frozenset[VisitStatus] | set[VisitStatus],
        **fields: str | int | float | bool,
    ) -> Transition:
        args: list[str | int | float] = [
            to.value,
            ",".join(sorted(s.value for s in allowed_from)),
            1 if to in HOLDING else 0,
            hold_member(visit),
            visit.visit_id,
        ]
        for name, value in fields.items():
            args += [name, ("1" if value else "0") if isinstance(value, bool) else str(value)]
        result = await self._transition(
            keys=[
                VISIT(visit.visit_id),
                SLOT(visit.facility_id, visit.start),
                RESIDENT_HOLDS(visit.resident_id),
                FAMILY_HOLDS(visit.family_id),
            ],
            args=args,
        )
        return Transition(bool(int(result[0])), text(result[1]))

    async def set_fields(self, visit_id: str, **fields: str) -> None:
        """Fields that change no status (the call placed for it, that it connected)."""
        mapping: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}
        await self.redis.hset(VISIT(visit_id), mapping=mapping)

    async def claim_once(self, visit_id: str, flag: str) -> bool:
        """True the first time ``flag`` is claimed for this visit (a reminder sent once)."""
        claimed = self.redis.hsetnx(VISIT(visit_id), f"once_{flag}", "1")
        return bool(await claimed)

    async def _listed(self, key: str, start: float, end: float, limit: int) -> list[Visit]:
        found = await self.redis.zrangebyscore(key, start, f"({end}", start=0, num=limit)
        ids = [raw for raw in found if isinstance(raw, bytes | str)]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for raw in ids:
                pipe.hgetall(VISIT(text(raw)))
            rows = await pipe.execute()
        return [Visit.from_hash(row) for row in rows if row]

    async def of_family(
        self, family_id: str, start: float, end: float, limit: int = 500
    ) -> list[Visit]:
        return await self._listed(FAMILY_VISITS(family_id), start, end, limit)

    async def of_resident(
        self, resident_id: str, start: float, end: float, limit: int = 500
    ) -> list[Visit]:
        return await self._listed(RESIDENT_VISITS(resident_id), start, end, limit)

    async def of_facility(
        self, facility_id: str, start: float, end: float, limit: int = 2000
    ) -> list[Visit]:
        return await self._listed(FACILITY_VISITS(facility_id), start, end, limit)

    async def taken(self, facility_id: str, starts: list[int]) -> list[int]:
        """How many stations are held in each slot starting at ``starts``."""
        if not starts:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in starts:
                pipe.scard(SLOT(facility_id, start))
            counts = await pipe.execute()
        return [int(c) for c in counts]

    async def link_call(self, call_id: str, visit_id: str) -> None:
        await self.redis.set(CALL_VISIT(call_id), visit_id, ex=CALL_LINK_TTL_S)

    async def visit_of_call(self, call_id: str) -> str | None:
        raw = await self.redis.get(CALL_VISIT(call_id))
        return text(raw) if raw is not None else None
