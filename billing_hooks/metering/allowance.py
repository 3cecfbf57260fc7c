"""The agency-paid allowance of each resident (SPEC "Who pays"), in Redis.

A call reserves its part of what remains of the resident's period at connect
(``allowance_reserve.lua``) and consumes it once at the end (``allowance_settle.lua``, queued in
the same MULTI as the ledger's settlement by :class:`billing_hooks.metering.biller.Biller`). Both scripts
are keyed by the call, so a retry (a node that died, a settle timer on another node) returns the
first result; the reservation is atomic, so concurrent calls of one resident on two nodes never
share a second, and the allowance never goes negative.

Keys (see the scripts' headers and :mod:`billing_hooks.redis_keys`): ``allow:call:{call_id}``,
``allow:{resident_id}:{period}:{start}`` with ``{period}:{start}`` a
:func:`core.tariff.period_key` (``day:2026-12-07``, ``week:2026-12-07``: the allowance is whole
again at local midnight, or local Monday), and ``agency:{facility_id}:{day}`` (the agency's
seconds per facility and local day, for the admins' board). A call's hash keeps the name of
the period hash it reserved in (``period``), so these names must never change without a
migration of those values too.

Writes are durable like the ledger's (:mod:`billing_hooks.durability`): behind Sentinel a
reservation is acknowledged only once a replica has it (else :class:`NotDurable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from billing_hooks.durability import required, run_durably
from billing_hooks.redis_keys import AGENCY_DAY, ALLOWANCE_CALL, ALLOWANCE_PERIOD
from core import tariff
from core.lua import script
from core.redis_text import text

KEEP_S: Final = 15 * 86400  # a week's period and its calls outlive the week
BOARD_KEEP_S: Final = 40 * 86400  # like core.facility_stats


RESERVE_LUA: Final = script(__package__, "allowance_reserve.lua")
SETTLE_LUA: Final = script(__package__, "allowance_settle.lua")


def period_hash(resident_id: str, period: str) -> str:
    """The hash of ``resident_id``'s allowance in ``period`` (a :func:`core.tariff.period_key`,
    such as ``day:2026-12-07``)."""
    kind, start = period.split(":", 1)
    return ALLOWANCE_PERIOD(resident_id, kind, start)


# What settling a call that reserved nothing passes for its period: the script never touches it.
NO_PERIOD: Final = ALLOWANCE_PERIOD("-", "none", "-")


@dataclass(frozen=True)
class Reservation:
    """A call's part of the allowance: ``state`` ``reserved``, ``settled`` or ``void``."""

    state: str
    granted: int
    period: str  # the period hash it was reserved in ('' if none)
    consumed: int = 0

    @property
    def void(self) -> bool:
        return self.state == "void"


@dataclass(frozen=True)
class Usage:
    """A resident's period: seconds ``used`` by settled calls and ``reserved`` by live ones."""

    used: int
    reserved: int

    def remaining(self, limit_s: int | None) -> int | None:
        return None if limit_s is None else max(0, limit_s - self.used - self.reserved)


class Allowances:
    """All Redis access for the agency's allowance. ``clock``: now, in Unix seconds."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self.clock = clock
        self._reserve = redis.register_script(RESERVE_LUA)
        self._settle = redis.register_script(SETTLE_LUA)

    def period(self, plan: tariff.Plan, timezone: str, resident_id: str) -> str:
        """The period hash of the resident's allowance now."""
        return period_hash(resident_id, tariff.period_key(plan.period, timezone, self.clock()))

    async def usage(self, plan: tariff.Plan, timezone: str, resident_id: str) -> Usage:
        used, reserved = await self._redis.hmget(
            self.period(plan, timezone, resident_id), "used", "reserved"
        )
        return Usage(int(used or 0), int(reserved or 0))

    async def remaining(self, plan: tariff.Plan, timezone: str, resident_id: str) -> int | None:
        """What is left of the resident's allowance now (None: unlimited)."""
        usage = await self.usage(plan, timezone, resident_id)
        return usage.remaining(plan.allowance_s)

    async def reserve(
        self, call_id: str, plan: tariff.Plan, timezone: str, resident_id: str, want_s: int
    ) -> Reservation:
        """Reserve up to ``want_s`` of what remains now, once per call."""
        limit = plan.allowance_s
        keys = [ALLOWANCE_CALL(call_id), self.period(plan, timezone, resident_id)]
        args: list[Any] = [max(0, int(want_s)), -1 if limit is None else limit, KEEP_S]
        if required(self._redis).replicas:

            async def queue(pipe: Pipeline) -> None:
                await self._reserve(keys=keys, args=args, client=pipe)

            done = await run_durably(self._redis, queue)
            [raw] = done.check(f"the allowance reservation of call {call_id}")
        else:
            raw = await self._reserve(keys=keys, args=args)
        state, granted, period = raw
        return Reservation(text(state), int(granted), text(period))

    async def reservation(
        self, call_id: str, client: Redis | Pipeline | None = None
    ) -> Reservation | None:
        """The call's reservation (``client``: a pipeline WATCHing its ``ALLOWANCE_CALL``)."""
        raw = await (client or self._redis).hgetall(ALLOWANCE_CALL(call_id))
        if not raw:
            return None
        data = {text(k): text(v) for k, v in raw.items()}
        return Reservation(
            data.get("state", ""),
            int(data.get("granted") or 0),
            data.get("period", ""),
            int(data.get("consumed") or 0),
        )

    async def queue_settle(
        self,
        pipe: Pipeline,
        call_id: str,
        period: str,
        facility_id: str,
        day: str,
        agency_seconds: int,
    ) -> None:
        """Queue the consumption of the call's reservation on ``pipe`` (a MULTI). A call of no
        facility (a record without one) counts on the board of facility ``-``."""
        board = AGENCY_DAY(facility_id or "-", day)
        await self._settle(
            keys=[ALLOWANCE_CALL(call_id), period or NO_PERIOD, board],
            args=[max(0, int(agency_seconds)), KEEP_S, BOARD_KEEP_S],
            client=pipe,
        )

    @staticmethod
    def settled(raw: Any) -> tuple[str, int]:
        """What :meth:`queue_settle`'s script returned: ``(state, consumed)``."""
        if isinstance(raw, Exception):
            raise raw
        state, consumed = raw
        return text(state), int(consumed)

    async def agency_seconds(self, facility_id: str, day: str) -> int:
        """The agency's seconds of the facility's calls settled on that local day."""
        raw = await self._redis.hget(AGENCY_DAY(facility_id, day), "agency_seconds")
        return int(raw or 0)
