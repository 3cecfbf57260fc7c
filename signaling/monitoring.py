"""Monitoring staff: the live call list, flags and terminations, scoped to their facilities.

Monitors are invisible: nothing here emits to the parties except the ``call.ended`` that a
termination causes (reason ``terminated``, never naming who).

A call keeps at most ``max_flags`` flags, and its flags and watchers expire ``retention_s``
after they last changed (long enough for the recording's manifest to take them in).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Final

from redis.asyncio import Redis

from core.errors import ErrorCode, ProtocolError
from core.lua import script
from core.redis_text import text
from signaling.call_events import Emitter, call_summary, monitors_room
from signaling.call_state import LIVE, CallRecord, CallStore
from signaling.payloads import Empty, Flag
from signaling.redis_keys import CALL_FLAGS, CALL_WATCHERS
from signaling.session import Session

MAX_FLAGS = 200
RETENTION_S = 7 * 24 * 3600

_ADD_FLAG: Final = script("signaling", "flag_add.lua")


def flags_key(call_id: str) -> str:
    return CALL_FLAGS(call_id)


def watchers_key(call_id: str) -> str:
    return CALL_WATCHERS(call_id)


class Monitoring:
    def __init__(
        self,
        redis: Redis,
        store: CallStore,
        emit: Emitter,
        *,
        max_flags: int = MAX_FLAGS,
        retention_s: float = RETENTION_S,
    ) -> None:
        self._redis = redis
        self._store = store
        self._emit = emit
        self.max_flags = max_flags
        self.retention_s = int(retention_s)
        self._add_flag = redis.register_script(_ADD_FLAG)

    async def scoped(self, session: Session, call_id: str, *, allow_privileged: bool) -> CallRecord:
        """The call, if it belongs to one of the monitor's facilities."""
        record = await self._store.get(call_id)
        if record is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no call {call_id!r}")
        if record.facility_id not in session.facility_ids:
            raise ProtocolError(ErrorCode.FORBIDDEN, "this call is not in your facilities")
        if record.privileged and not allow_privileged:
            raise ProtocolError(ErrorCode.PRIVILEGED, "privileged calls are not monitored")
        return record

    async def watcher_count(self, call_id: str) -> int:
        return int(await self._redis.scard(watchers_key(call_id)))

    async def watcher_ids(self, call_id: str) -> list[str]:
        """The watching monitors' socket ids."""
        return sorted(text(raw) for raw in await self._redis.smembers(watchers_key(call_id)))

    async def add_watcher(self, call_id: str, watcher_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(watchers_key(call_id), watcher_id)
            pipe.expire(watchers_key(call_id), self.retention_s)
            await pipe.execute()
        await self._announce(call_id)

    async def remove_watcher(self, call_id: str, watcher_id: str) -> bool:
        """False if ``watcher_id`` was not watching."""
        removed = bool(await self._redis.srem(watchers_key(call_id), watcher_id))
        if removed:
            await self._announce(call_id)
        return removed

    async def clear_watchers(self, call_id: str) -> None:
        await self._redis.delete(watchers_key(call_id))

    async def _announce(self, call_id: str) -> None:
        """Tell the facility's monitors the watcher count changed."""
        record = await self._store.get(call_id)
        if record is not None and record.live:
            summary = await self.summary(record)
            await self._emit("monitor.call_updated", summary, monitors_room(record.facility_id))

    async def summary(self, record: CallRecord) -> dict[str, Any]:
        return call_summary(record, watchers=await self.watcher_count(record.call_id))

    async def list_calls(self, session: Session, payload: Empty) -> dict[str, Any]:
        """``monitor.calls``: the live calls of the monitor's facilities."""
        records = await self._store.live_calls(session.facility_ids)
        return {"calls": [await self.summary(r) for r in records]}

    async def flag(self, session: Session, payload: Flag) -> dict[str, Any]:
        """``monitor.flag``: a note at this moment of the call's recording."""
        record = await self.scoped(session, payload.call_id, allow_privileged=False)
        if record.state not in LIVE:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"the call is already {record.state}")
        now = time.time()
        offset = round(now - record.connected_at, 3) if record.connected_at else 0.0
        flag = {
            "flag_id": uuid.uuid4().hex[:12],
            "offset_s": offset,
            "note": payload.note,
            "by": session.subject,
            "at": now,
        }
        args: list[str | int] = [json.dumps(flag), self.max_flags, self.retention_s]
        if not await self._add_flag(keys=[flags_key(record.call_id)], args=args):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, f"this call already has {self.max_flags} flags"
            )
        return {"flag_id": flag["flag_id"], "offset_s": offset}

    async def flags(self, call_id: str) -> list[dict[str, Any]]:
        return [
            json.loads(text(raw)) for raw in await self._redis.lrange(flags_key(call_id), 0, -1)
        ]
