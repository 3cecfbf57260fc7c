"""The append-only audit log of identity reviews: every image view and every decision.

Like the recordings' log (:mod:`recorder.audit`), a Redis stream: ``audit:identity`` (``XADD``
only: nothing here edits, trims or deletes an entry), each entry who (staff id, role), did
what (``view`` an image, ``review`` a submission), to which family, when, and from where.
``audit:identity:family:<id>`` lists a family's entry ids, so its history is read without a
scan. An entry and its index are written in one step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from redis.asyncio import Redis

from core.redis_text import text

STREAM: Final = "audit:identity"
MAX_TEXT: Final = 512
Action = Literal["view", "review"]

_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV))
redis.call('RPUSH', KEYS[2], id)
return id
"""


def _family_key(family_id: str) -> str:
    return f"{STREAM}:family:{family_id}"


@dataclass(frozen=True)
class Viewer:
    staff_id: str
    role: str
    remote: str = ""
    user_agent: str = ""


class IdentityAudit:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._append = redis.register_script(_APPEND)

    async def append(
        self,
        who: Viewer,
        action: Action,
        family_id: str,
        detail: Mapping[str, Any] | None = None,
    ) -> str:
        fields = {
            "at": repr(round(self._clock(), 3)),
            "staff_id": who.staff_id[:MAX_TEXT],
            "role": who.role[:MAX_TEXT],
            "action": action,
            "family_id": family_id,
            "remote": who.remote[:MAX_TEXT],
            "user_agent": who.user_agent[:MAX_TEXT],
            "detail": json.dumps(dict(detail or {}), sort_keys=True),
        }
        args = [x for pair in fields.items() for x in pair]
        added = await self._append(keys=[STREAM, _family_key(family_id)], args=args)
        return text(added)

    async def for_family(self, family_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest ``limit`` entries about a family, oldest first."""
        ids = await self._redis.lrange(_family_key(family_id), -limit, -1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(STREAM, entry_id, entry_id)
            rows = await pipe.execute()
        return [_entry(eid, fields) for row in rows for eid, fields in row]


def _entry(entry_id: bytes | str, raw: Mapping[Any, Any]) -> dict[str, Any]:
    data = {text(k): text(v) for k, v in raw.items()}
    return {
        "id": text(entry_id),
        "at": float(data["at"]),
        "staff_id": data["staff_id"],
        "role": data["role"],
        "action": data["action"],
        "family_id": data["family_id"],
        "remote": data["remote"],
        "user_agent": data["user_agent"],
        "detail": json.loads(data["detail"]),
    }
