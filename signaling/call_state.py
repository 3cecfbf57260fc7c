"""Call records and their state machine (declared in :mod:`signaling.call_machine`), in Redis.

Each transition is one Lua script run (``call_transition.lua``) that checks the current state, writes the new one, frees
the parties' "busy" slots when the call is over, and moves the call's durable timers, all at once.
So two accepts, an accept after the ring timeout, or a cancel racing an accept resolve to exactly
one outcome, and a crash can never leave a ringing call without its timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from core.config import CALL_RETENTION_S
from core.lua import script
from core.redis_text import text
from signaling.redis_keys import BUSY, CALL, LIVE_CALLS, TIMERS
from signaling.timers import timer_member

if TYPE_CHECKING:
    from signaling.call_machine import Move


class CallState(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CONNECTED = "connected"
    ENDED = "ended"
    UNANSWERED = "unanswered"
    CANCELED = "canceled"
    # The family rejected; the tablet keeps ringing until the ring timeout (PROTOCOL.md v1.1:
    # a reject and no answer look the same to a resident, in content and in timing). The
    # family is free at once; the resident stays busy with this call until then.
    DECLINED = "declined"


LIVE = (CallState.RINGING, CallState.ACCEPTED, CallState.CONNECTED)
TERMINAL = (CallState.ENDED, CallState.UNANSWERED, CallState.CANCELED)

_CREATE: Final = script("signaling", "call_create.lua")
_TRANSITION: Final = script("signaling", "call_transition.lua")
_CLAIM_ONCE: Final = script("signaling", "call_claim_once.lua")


@dataclass
class CallRecord:
    call_id: str
    state: CallState
    facility_id: str
    facility_name: str
    resident_id: str
    resident_name: str
    family_id: str
    family_name: str
    privileged: bool
    rate_cents_per_minute: int
    max_call_seconds: int
    created_at: float
    accepted_at: float = 0.0
    connected_at: float = 0.0
    ended_at: float = 0.0
    allowed_seconds: int = 0
    ends_at: float = 0.0
    end_reason: str = ""
    ended_by: str = ""
    worker_id: str = ""  # the SFU worker the call was placed on
    warned_at: float = 0.0  # when both parties were told one minute remains

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def duration_s(self) -> int:
        """Connected seconds (zero for a call that never connected)."""
        if not self.connected_at:
            return 0
        end = self.ended_at or time.time()
        return max(0, int(end - self.connected_at))

    def to_redis(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            out[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_redis(cls, raw: Mapping[bytes | str, bytes | str]) -> CallRecord:
        data = {text(k): text(v) for k, v in raw.items()}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.type == "bool":
                kwargs[f.name] = value == "1"
            elif f.type == "int":
                kwargs[f.name] = int(value)
            elif f.type == "float":
                kwargs[f.name] = float(value)
            elif f.type == "CallState":
                kwargs[f.name] = CallState(value)
            else:
                kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Transition:
    """The outcome of a transition attempt: applied, or refused with the state found."""

    applied: bool
    previous: CallState | None

    @property
    def missing(self) -> bool:
        return self.previous is None


def _once_field(what: str) -> str:
    return f"once:{what}"  # not a CallRecord field: from_redis ignores it


def _busy_keys(resident_id: str, family_id: str) -> list[str]:
    return [BUSY("resident", resident_id), BUSY("family", family_id)]


class CallStore:
    """All Redis access for call records."""

    def __init__(self, redis: Redis, retention_s: float = CALL_RETENTION_S) -> None:
        self._redis = redis
        self._retention_s = retention_s  # an ended call's record is kept this long
        self._create = redis.register_script(_CREATE)
        self._transition = redis.register_script(_TRANSITION)
        self._claim_once = redis.register_script(_CLAIM_ONCE)

    @property
    def redis(self) -> Redis:
        return self._redis

    async def create(self, record: CallRecord, ring_timeout_s: float) -> bool:
        """Store a ringing call and its ring timer; False if either party is busy."""
        due_ms = int((record.created_at + ring_timeout_s) * 1000)
        pairs = [item for kv in record.to_redis().items() for item in kv]
        keys = [
            *_busy_keys(record.resident_id, record.family_id),
            CALL(record.call_id),
            LIVE_CALLS(record.facility_id),
            TIMERS(),
        ]
        args: list[str | int] = [
            record.call_id,
            timer_member("ring_timeout", record.call_id),
            due_ms,
            *pairs,
        ]
        result = await self._create(keys=keys, args=args)
        return bool(result == b"ok")

    async def get(self, call_id: str) -> CallRecord | None:
        if not call_id or len(call_id) > 64:
            return None
        raw = await self._redis.hgetall(CALL(call_id))
        return CallRecord.from_redis(raw) if raw else None

    async def transition(
        self,
        record: CallRecord,
        move: Move,
        *,
        set_fields: Mapping[str, str | int | float] | None = None,
        due: Mapping[str, float] | None = None,
    ) -> Transition:
        """Apply one row of the transition table (:mod:`signaling.call_machine`) to ``record``
        if its stored state is one the row leaves from. ``due``: when each timer the row arms
        is due (every one of them, no other)."""
        due = due or {}
        if set(due) != set(move.arms):
            raise ValueError(f"{move.event}: arms {move.arms}, due times given for {sorted(due)}")
        keys = [
            CALL(record.call_id),
            *_busy_keys(record.resident_id, record.family_id),
            LIVE_CALLS(record.facility_id),
            TIMERS(),
        ]
        args: list[bytes | str | int | float] = [
            ",".join(sorted(move.sources)),
            move.target.value,
            move.releases,
            ",".join(timer_member(kind, record.call_id) for kind in move.cancels),
            ",".join(
                f"{timer_member(kind, record.call_id)}={int(due[kind] * 1000)}"
                for kind in move.arms
            ),
            int(self._retention_s),
        ]
        for name, value in (set_fields or {}).items():
            args += [name, value]
        status, state = await self._transition(keys=keys, args=args)
        if status == b"missing":
            return Transition(applied=False, previous=None)
        return Transition(applied=status == b"ok", previous=CallState(text(state)))

    async def active_call(self, role: str, subject: str) -> str | None:
        raw = await self._redis.get(BUSY(role, subject))
        return text(raw) if raw else None

    async def live_calls(self, facility_ids: Iterable[str]) -> list[CallRecord]:
        out: list[CallRecord] = []
        for facility_id in facility_ids:
            for member in sorted(await self._redis.smembers(LIVE_CALLS(facility_id))):
                record = await self.get(text(member))
                if record is not None and record.live:
                    out.append(record)
        return out

    async def annotate(self, call_id: str, values: Mapping[str, str]) -> None:
        """Record facts about a call that are not state (its worker, who terminated it)."""
        mapping: dict[FieldT, EncodableT] = {}
        mapping.update(values)
        await self._redis.hset(CALL(call_id), mapping=mapping)

    async def claim_once(
        self, call_id: str, what: str, *, stamp: tuple[str, float] | None = None
    ) -> bool:
        """True for exactly one caller per call and ``what`` (across retries and nodes): the
        one that may do that step (send ``call.warning``, the family's ``call.ended`` ...).
        ``stamp``: a (field, time) of the record set with the claim (e.g. ``warned_at``)."""
        args: list[str | float] = [_once_field(what), *(stamp or ())]
        return bool(await self._claim_once(keys=[CALL(call_id)], args=args))

    async def claimed(self, call_id: str, what: str) -> bool:
        """Whether :meth:`claim_once` already returned True for this call and ``what``."""
        return bool(await self._redis.hexists(CALL(call_id), _once_field(what)))
