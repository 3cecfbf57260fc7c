"""What the append-only audit logs share (:mod:`recorder.audit` for recordings,
:mod:`accounts.identity_audit` for identity reviews): who did it (:class:`Actor`), the fields
every entry has, and reading the entries an index lists.

Each log is a Redis stream written only with ``XADD`` (nothing edits, trims or deletes an
entry) beside lists of entry ids per subject (a call, a family), so one subject's history is
read without scanning the stream. Every entry carries ``at`` (seconds, 3 decimals), who
(``staff_id``, ``role``), from where (``remote``, ``user_agent``; each text cut to
:data:`MAX_TEXT`) and a JSON ``detail``; each log adds its own fields (``action`` and what it
is about).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from redis.asyncio import Redis

from core.redis_text import text

MAX_TEXT: Final = 512


@dataclass(frozen=True)
class Actor:
    """Who did what an entry says, and from where."""

    staff_id: str
    role: str
    remote: str = ""
    user_agent: str = ""


class AuditTrail:
    """What an audit log's class starts from: its Redis, its clock, and its append script
    (``APPEND``: the ``XADD`` and the indexes, in one step; the text of a ``.lua`` file of the
    log's package, ``core.lua.script(package, name)``, with its KEYS/ARGV header and its own
    direct test). The stream and the indexes are the log's package's keys."""

    APPEND: ClassVar[str]

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._append = redis.register_script(self.APPEND)


def entry_fields(
    at: float, actor: Actor, own: Mapping[str, str], detail: Mapping[str, Any] | None
) -> list[str]:
    """An entry's fields as ``XADD`` takes them (name, value, ...): the shared ones around the
    log's ``own`` (in this order: at, staff_id, role, own..., remote, user_agent, detail)."""
    fields = {
        "at": repr(round(at, 3)),
        "staff_id": actor.staff_id[:MAX_TEXT],
        "role": actor.role[:MAX_TEXT],
        **own,
        "remote": actor.remote[:MAX_TEXT],
        "user_agent": actor.user_agent[:MAX_TEXT],
        "detail": json.dumps(dict(detail or {}), sort_keys=True),
    }
    return [x for pair in fields.items() for x in pair]


def read_entry(
    entry_id: bytes | str,
    raw: Mapping[Any, Any],
    own: Callable[[Mapping[str, str]], dict[str, Any]],
) -> dict[str, Any]:
    """An entry, decoded: the shared fields around what ``own`` makes of the log's own (given
    every field as text), in :func:`entry_fields`' order, the stream id first as ``id``."""
    data = {text(k): text(v) for k, v in raw.items()}
    return {
        "id": text(entry_id),
        "at": float(data["at"]),
        "staff_id": data["staff_id"],
        "role": data["role"],
        **own(data),
        "remote": data["remote"],
        "user_agent": data["user_agent"],
        "detail": json.loads(data["detail"]),
    }


async def indexed_entries(
    redis: Redis, stream: str, index_key: str, limit: int
) -> list[tuple[bytes | str, Mapping[Any, Any]]]:
    """The latest ``limit`` entries of ``stream`` whose ids ``index_key`` lists, oldest first."""
    ids = await redis.lrange(index_key, -limit, -1)
    async with redis.pipeline(transaction=False) as pipe:
        for entry_id in ids:
            pipe.xrange(stream, entry_id, entry_id)
        rows = await pipe.execute()
    return [(eid, fields) for row in rows for eid, fields in row]
