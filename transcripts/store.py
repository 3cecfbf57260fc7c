"""Transcripts in Redis, one hash per call; all Redis access for transcripts goes through
:class:`TranscriptStore` (alerts and watch words have their own classes).

Keys (:mod:`transcripts.redis_keys`): ``transcripts:call:<call_id>`` hash (``status`` pending|working|done|failed, ``body`` the signed
transcript's JSON, ``sha256`` of that body, ``engine``, ``by`` the worker that made it,
``tries``, ``error``, ``completions``, ``facility_id``); ``transcripts:log`` a stream with one entry per
transcript done or deleted (``call_id``, and ``n`` its number: entries are numbered without a
gap, so a reader sees whether entries it did not read were trimmed; what every node's search
index follows, see :mod:`transcripts.index`), trimmed to its newest ``log_max`` entries on every write (so it never
grows with the deployment's history); ``transcripts:done`` the set of calls with a transcript done (what a
node whose place in the log was trimmed away rebuilds its index from); ``transcripts:dead`` the calls
given up on (dead-lettered), newest last, trimmed to ``dead_max``; ``transcripts:stats`` the
deployment's running totals (``done``, ``retried``, ``dead_lettered``, ``audio_s``, ``cpu_s``, and ``logged`` the log's numbering:
what :mod:`transcripts.metrics` reports). Finishing is one Lua script that refuses a call
already done, so a job retried after a crash is done exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from redis.asyncio import Redis

from core.lua import script
from core.redis_text import text
from transcripts.model import Status
from transcripts.redis_keys import DEAD as DEAD_KEY
from transcripts.redis_keys import DONE as DONE_KEY
from transcripts.redis_keys import LOG as LOG_KEY
from transcripts.redis_keys import STATS as STATS_KEY
from transcripts.redis_keys import TRANSCRIPT

LOG: Final = LOG_KEY()
DEAD: Final = DEAD_KEY()
DONE: Final = DONE_KEY()
STATS: Final = STATS_KEY()
LOG_MAX: Final = 10_000  # log entries kept: far more than a node falls behind between searches
DEAD_MAX: Final = 10_000

_FINISH: Final = script(__package__, "transcript_finish.lua")
_FORGET: Final = script(__package__, "transcript_forget.lua")
_CLAIM: Final = script(__package__, "transcript_claim.lua")


@dataclass(frozen=True)
class Stored:
    call_id: str
    status: Status
    body: bytes | None
    sha256: str | None
    engine: str | None
    by: str | None
    tries: int
    completions: int
    error: str | None
    audio_s: float = 0.0
    cpu_s: float = 0.0
    updated_at: float = 0.0  # the last change of status (claimed, done)


@dataclass(frozen=True)
class LogEntry:
    """One entry of ``transcripts:log``; ``n`` ``None`` for an entry written before entries were numbered."""

    entry_id: str
    call_id: str
    n: int | None


class TranscriptStore:
    def __init__(
        self,
        redis: Redis,
        clock: Callable[[], float] = time.time,
        *,
        log_max: int = LOG_MAX,
        dead_max: int = DEAD_MAX,
    ) -> None:
        if log_max < 1 or dead_max < 1:
            raise ValueError("log_max and dead_max must be at least 1")
        self._redis = redis
        self._clock = clock
        self._log_max = log_max
        self._dead_max = dead_max
        self._finish = redis.register_script(_FINISH)
        self._claim = redis.register_script(_CLAIM)
        self._forget = redis.register_script(_FORGET)

    async def mark_pending(self, call_id: str, facility_id: str) -> bool:
        """Note a sealed recording to transcribe; ``False`` if it already was."""
        key = TRANSCRIPT(call_id)
        fresh = bool(await self._redis.hsetnx(key, "status", "pending"))
        if fresh:
            await self._redis.hset(key, mapping={"facility_id": facility_id, "tries": 0})
        return fresh

    async def claim(self, call_id: str, worker_id: str) -> int:
        """Mark the call being transcribed by ``worker_id``; the try number (0: already done)."""
        now = repr(self._clock())
        return int(await self._claim(keys=[TRANSCRIPT(call_id)], args=[worker_id, now]))

    async def finish(
        self,
        call_id: str,
        body: bytes,
        sha256: str,
        engine: str,
        worker_id: str,
        *,
        audio_s: float = 0.0,
        cpu_s: float = 0.0,
    ) -> bool:
        """Store the signed transcript (and its cost: seconds of audio, CPU seconds); ``False``
        if the call was already done (by another worker)."""
        now = repr(self._clock())
        args: list[bytes | str] = [body, sha256, engine, worker_id, now, call_id]
        args += [repr(round(audio_s, 3)), repr(round(cpu_s, 3)), str(self._log_max)]
        keys = [TRANSCRIPT(call_id), LOG, DONE, STATS]
        return bool(await self._finish(keys=keys, args=args))

    async def fail(self, call_id: str, error: str, *, final: bool) -> None:
        """A try failed; ``final``: given up (dead-lettered), else it will be retried."""
        key = TRANSCRIPT(call_id)
        if await self._redis.hget(key, "status") in (b"done", "done"):
            return
        status = "failed" if final else "pending"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"status": status, "error": error[:1000]})
            pipe.hincrby(STATS, "dead_lettered" if final else "retried", 1)
            if final:
                entry = {"call_id": call_id, "error": error[:1000], "at": self._clock()}
                pipe.rpush(DEAD, json.dumps(entry))
                pipe.ltrim(DEAD, -self._dead_max, -1)
            await pipe.execute()

    async def get(self, call_id: str) -> Stored | None:
        raw = await self._redis.hgetall(TRANSCRIPT(call_id))
        if not raw:
            return None
        data: dict[str, Any] = {text(k): v for k, v in raw.items()}

        def field(name: str) -> str | None:
            value = data.get(name)
            return text(value) if value not in (None, b"", "") else None

        body = data.get("body")
        return Stored(
            call_id=call_id,
            status=cast(Status, field("status") or "pending"),
            body=(body.encode() if isinstance(body, str) else body) or None,
            sha256=field("sha256"),
            engine=field("engine"),
            by=field("by"),
            tries=int(field("tries") or 0),
            completions=int(field("completions") or 0),
            error=field("error"),
            audio_s=float(field("audio_s") or 0),
            cpu_s=float(field("cpu_s") or 0),
            updated_at=float(field("updated_at") or 0),
        )

    async def forget_pending(self, call_id: str) -> None:
        """Undo :meth:`mark_pending` (its job could not be queued): a later seal may retry."""
        await self._redis.delete(TRANSCRIPT(call_id))

    async def forget(self, call_id: str) -> bool:
        """Delete a call's transcript (its recording was purged); the indexes follow."""
        keys = [TRANSCRIPT(call_id), LOG, DONE, STATS]
        return bool(await self._forget(keys=keys, args=[call_id, str(self._log_max)]))

    async def dead(self) -> list[dict[str, Any]]:
        return [json.loads(text(raw)) for raw in await self._redis.lrange(DEAD, 0, -1)]

    async def log_since(self, after: str, count: int | None = 500) -> list[LogEntry]:
        """The log's entries after stream id ``after`` (``"0"``: from its oldest), oldest first."""
        start = f"({after}" if after != "0" else "-"
        rows: Any = await self._redis.xrange(LOG, min=start, count=count)
        return [_entry(entry_id, fields) for entry_id, fields in rows]

    async def log_bounds(self) -> tuple[LogEntry, LogEntry] | None:
        """The log's oldest and newest entries (``None``: the log is empty)."""
        oldest: Any = await self._redis.xrange(LOG, count=1)
        newest: Any = await self._redis.xrevrange(LOG, count=1)
        if not oldest or not newest:
            return None
        return _entry(*oldest[0]), _entry(*newest[0])

    async def log_length(self) -> int:
        return int(await self._redis.xlen(LOG))

    async def done_calls(self) -> list[str]:
        """Every call with a transcript done (what an index is rebuilt from)."""
        return sorted(text(c) for c in await self._redis.smembers(DONE))

    async def note_done(self, call_ids: Sequence[str]) -> None:
        """Add calls done before ``transcripts:done`` was kept to it (what an index rebuild finds)."""
        if call_ids:
            await self._redis.sadd(DONE, *call_ids)

    async def stats(self) -> dict[str, float]:
        """The deployment's running totals (see the module's docstring)."""
        raw = await self._redis.hgetall(STATS)
        return {text(k): float(text(v)) for k, v in raw.items()}

    async def bodies(self, call_ids: Sequence[str]) -> dict[str, bytes]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in call_ids:
                pipe.hget(TRANSCRIPT(call_id), "body")
            found = await pipe.execute()
        return {
            c: (b.encode() if isinstance(b, str) else b)
            for c, b in zip(call_ids, found, strict=True)
            if b
        }


def _entry(entry_id: Any, fields: dict[Any, Any]) -> LogEntry:
    values = {text(k): text(v) for k, v in fields.items()}
    n = values.get("n")
    return LogEntry(text(entry_id), values["call_id"], int(n) if n else None)
