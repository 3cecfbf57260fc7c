"""The recording catalog in Redis: manifests, search indexes, legal hold. All Redis access for
recordings goes through :class:`Catalog` (the audit log has its own class).

Keys (:mod:`recorder.redis_keys`): ``rec:{call_id}`` hash (``manifest`` JSON, ``state``
recording|final|purged, ``hold``); sorted sets by ``started_at``: ``recordings:all``,
``recordings:facility:{id}``, ``recordings:resident:{id}``, ``recordings:family:{id}``,
``recordings:flagged``; ``recordings:open`` (calls still recording) and
``recordings:facilities``. ``watch_flags`` (JSON list) in the hash holds the flags a transcript
added (watch words heard): outside the signed manifest (the transcript that found them is
signed on its own), shown among the summary's ``flags`` and counted by ``flagged``. Every state
change is one Lua script (``catalog_*.lua``) that checks the state it starts from, so a sweep
and a normal finalize can never both win.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from redis.asyncio import Redis

from core.lua import script
from core.redis_text import text
from recorder.manifest import Manifest
from recorder.redis_keys import (
    ALL,
    BY_FACILITY,
    BY_FAMILY,
    BY_RESIDENT,
    FACILITIES,
    FLAGGED,
    OPEN,
    RECORDING,
)

State = Literal["recording", "final", "purged"]
PAGE = 200

_CREATE: Final = script("recorder", "catalog_create.lua")
_FINALIZE: Final = script("recorder", "catalog_finalize.lua")
_REMOVE: Final = script("recorder", "catalog_remove.lua")
_WATCH_FLAGS: Final = script("recorder", "catalog_watch_flags.lua")
_HOLD: Final = script("recorder", "catalog_hold.lua")


def _indexes(m: Manifest) -> list[str]:
    """The indexes every entry is in (``recordings:flagged`` only when flagged)."""
    return [ALL(), BY_FACILITY(m.facility_id), BY_RESIDENT(m.resident_id), BY_FAMILY(m.family_id)]


@dataclass(frozen=True)
class CatalogEntry:
    manifest: Manifest
    state: State
    legal_hold: bool
    watch_flags: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def flagged(self) -> bool:
        return self.manifest.flagged or bool(self.watch_flags)

    def summary(self) -> dict[str, Any]:
        """The manifest as investigators see it, with the catalog's mutable state; the flags
        a transcript added (``"source": "watch_word"``) follow the monitors' flags."""
        body = self.manifest.public() | {"state": self.state, "legal_hold": self.legal_hold}
        if self.watch_flags:
            body["flags"] = [*body["flags"], *map(dict, self.watch_flags)]
        return body


@dataclass(frozen=True)
class Query:
    resident_id: str | None = None
    family_id: str | None = None
    facility_id: str | None = None
    since: float | None = None  # started_at >= since
    until: float | None = None  # started_at <= until
    flagged: bool | None = None
    limit: int = 100

    def matches(self, entry: CatalogEntry, allowed: set[str] | None) -> bool:
        m = entry.manifest
        return (
            entry.state != "purged"
            and (allowed is None or m.facility_id in allowed)
            and self.resident_id in (None, m.resident_id)
            and self.family_id in (None, m.family_id)
            and self.facility_id in (None, m.facility_id)
            and self.flagged in (None, entry.flagged)
        )


def allowed_facilities(scope: Sequence[str]) -> set[str] | None:
    """``None`` means every facility (``"*"``)."""
    return None if "*" in scope else set(scope)


class Catalog:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)
        self._finalize = redis.register_script(_FINALIZE)
        self._remove = redis.register_script(_REMOVE)
        self._hold = redis.register_script(_HOLD)
        self._watch_flags = redis.register_script(_WATCH_FLAGS)

    async def create(self, manifest: Manifest) -> bool:
        """Add an unfinished recording; ``False`` if the call already has one."""
        m = manifest
        keys = [RECORDING(m.call_id), OPEN(), *_indexes(m), FACILITIES()]
        args = [m.model_dump_json(), repr(m.started_at), m.call_id, m.facility_id]
        return bool(await self._create(keys=keys, args=args))

    async def finalize(self, manifest: Manifest) -> bool:
        """Store the signed manifest (indexes move to its ``started_at``); ``False`` unless
        the entry was still recording."""
        m = manifest
        args = [m.model_dump_json(), "1" if m.flagged else "0", repr(m.started_at), m.call_id]
        keys = [RECORDING(m.call_id), OPEN(), FLAGGED(), *_indexes(m)]
        return bool(await self._finalize(keys=keys, args=args))

    async def discard(self, manifest: Manifest) -> bool:
        """Forget an unfinished recording that never got any media."""
        return await self._drop(manifest, "recording", "", 0.0)

    async def mark_purged(self, manifest: Manifest, at: float) -> bool:
        """Final, not on hold -> a tombstone (manifest kept, out of every search index)."""
        return await self._drop(manifest, "final", "purged", at)

    async def _drop(self, m: Manifest, from_state: State, to: str, at: float) -> bool:
        keys = [RECORDING(m.call_id), OPEN(), *_indexes(m), FLAGGED()]
        return bool(await self._remove(keys=keys, args=[m.call_id, from_state, to, repr(at)]))

    async def set_hold(self, call_id: str, hold: bool) -> bool:
        return bool(await self._hold(keys=[RECORDING(call_id)], args=["1" if hold else "0"]))

    async def set_watch_flags(self, call_id: str, flags: Sequence[Mapping[str, Any]]) -> bool:
        """The flags a transcript of this final recording added (replacing earlier ones)."""
        raw = json.dumps(list(flags), sort_keys=True)
        return bool(
            await self._watch_flags(keys=[RECORDING(call_id), FLAGGED()], args=[raw, call_id])
        )

    async def entries(self, call_ids: Sequence[str]) -> list[CatalogEntry]:
        """The entries of these calls that exist, in that order."""
        if not call_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in call_ids:
                pipe.hgetall(RECORDING(call_id))
            rows = await pipe.execute()
        return [e for e in map(_entry, rows) if e is not None]

    async def get(self, call_id: str) -> CatalogEntry | None:
        return _entry(await self._redis.hgetall(RECORDING(call_id)))

    async def open_call_ids(self) -> list[str]:
        return sorted(text(m) for m in await self._redis.smembers(OPEN()))

    async def facility_ids(self) -> list[str]:
        return sorted(text(m) for m in await self._redis.smembers(FACILITIES()))

    async def started_before(self, facility_id: str, before: float, count: int) -> list[str]:
        ids = await self._redis.zrangebyscore(
            BY_FACILITY(facility_id), "-inf", f"({before!r}", start=0, num=count
        )
        return _ids(ids)

    async def search(self, query: Query, scope: Sequence[str]) -> list[CatalogEntry]:
        """Entries matching ``query`` in the caller's facilities, newest first."""
        allowed = allowed_facilities(scope)
        if query.facility_id and allowed is not None and query.facility_id not in allowed:
            return []
        if query.resident_id:
            keys = [BY_RESIDENT(query.resident_id)]
        elif query.family_id:
            keys = [BY_FAMILY(query.family_id)]
        elif query.facility_id:
            keys = [BY_FACILITY(query.facility_id)]
        elif query.flagged:
            keys = [FLAGGED()]
        elif allowed is None:
            keys = [ALL()]
        else:
            keys = [BY_FACILITY(f) for f in sorted(allowed)]
        found: list[CatalogEntry] = []
        for key in keys:
            found += await self._scan(key, query, allowed)
        found.sort(key=lambda e: (e.manifest.started_at, e.manifest.call_id), reverse=True)
        return found[: query.limit]

    async def _scan(self, key: str, query: Query, allowed: set[str] | None) -> list[CatalogEntry]:
        top = "+inf" if query.until is None else repr(query.until)
        bottom = "-inf" if query.since is None else repr(query.since)
        out: list[CatalogEntry] = []
        offset = 0
        while len(out) < query.limit:
            ids = _ids(await self._redis.zrevrangebyscore(key, top, bottom, start=offset, num=PAGE))
            if not ids:
                break
            offset += len(ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id in ids:
                    pipe.hgetall(RECORDING(call_id))
                rows = await pipe.execute()
            entries = [e for e in map(_entry, rows) if e is not None]
            out += [e for e in entries if query.matches(e, allowed)]
        return out[: query.limit]


def _ids(raw: list[Any]) -> list[str]:
    return [text(item) for item in raw]


def _entry(raw: dict[Any, Any]) -> CatalogEntry | None:
    if not raw:
        return None
    data = {text(k): text(v) for k, v in raw.items()}
    manifest = Manifest.model_validate_json(data["manifest"])
    watch = tuple(json.loads(data["watch_flags"])) if data.get("watch_flags") else ()
    state = cast(State, data.get("state", "recording"))
    return CatalogEntry(manifest, state, data.get("hold") == "1", watch)
