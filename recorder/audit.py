"""The append-only audit log of recording access, a Redis stream (``XADD audit:log``).

Each entry says who (staff id, role), did what (list, view, download, verify, purge,
legal_hold), to which call, when, and from where (remote address, user agent). Nothing here
edits, trims or deletes an entry. ``audit:call:{call_id}`` lists the ids of the entries about
a call (a ``list`` entry is indexed under every call it returned), so a call's history is
read without scanning the stream. What it shares with the identity reviews' log is
:mod:`core.audit_trail`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from core.audit_trail import Actor, AuditTrail, entry_fields, indexed_entries, read_entry
from core.lua import script
from core.redis_text import text
from recorder.redis_keys import AUDIT_CALL, AUDIT_LOG, AUDIT_ONCE

__all__ = ["ONCE_TTL_S", "RETENTION", "Action", "Actor", "AuditLog", "Outcome"]

Action = Literal["list", "view", "download", "verify", "purge", "legal_hold"]
Outcome = Literal["ok", "not_found", "refused", "tampered"]  # tampered: a verify that failed

ONCE_TTL_S: Final = 12 * 3600  # how long a ``once`` key suppresses repeats


RETENTION: Final = Actor("system:retention", "system")


class AuditLog(AuditTrail):
    APPEND = script("recorder", "audit_append.lua")

    async def append(
        self,
        actor: Actor,
        action: Action,
        *,
        call_ids: Sequence[str] = (),
        facility_id: str | None = None,
        outcome: Outcome = "ok",
        detail: Mapping[str, Any] | None = None,
        once: str | None = None,
        once_ttl_s: int = ONCE_TTL_S,
    ) -> str | None:
        """Add one entry; returns its stream id. ``call_ids``: the call(s) it is about.

        With ``once``, only the first entry with that key is added (for ``once_ttl_s``), in
        the same step: e.g. one ``view`` per playback however many Range requests it makes.
        Returns ``None`` for a repeat."""
        own = {
            "action": action,
            "call_id": call_ids[0] if len(call_ids) == 1 else "",
            "facility_id": facility_id or "",
            "outcome": outcome,
        }
        fields = entry_fields(self._clock(), actor, own, detail)
        once_key = AUDIT_ONCE(once or "-")  # unused (ARGV[1] empty) without ``once``
        keys = [once_key, AUDIT_LOG(), *(AUDIT_CALL(c) for c in dict.fromkeys(call_ids))]
        args = [str(once_ttl_s) if once else "", *fields]
        added = await self._append(keys=keys, args=args)
        return text(added) if added else None

    async def for_call(self, call_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest ``limit`` entries about a call, oldest first."""
        found = await indexed_entries(self._redis, AUDIT_LOG(), AUDIT_CALL(call_id), limit)
        return [_entry(eid, fields) for eid, fields in found]

    async def recent(
        self, limit: int = 100, facility_ids: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest entries, newest first; only those about ``facility_ids`` if given."""
        out: list[dict[str, Any]] = []
        top = "+"
        while len(out) < limit:
            rows: Any = await self._redis.xrevrange(AUDIT_LOG(), top, "-", count=200)
            if not rows:
                break
            for eid, fields in rows:
                entry = _entry(eid, fields)
                if facility_ids is None or entry["facility_id"] in facility_ids:
                    out.append(entry)
            top = "(" + text(rows[-1][0])
        return out[:limit]


def _own(data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "action": data["action"],
        "call_id": data["call_id"] or None,
        "facility_id": data["facility_id"] or None,
        "outcome": data["outcome"],
    }


def _entry(entry_id: bytes | str, raw: Mapping[Any, Any]) -> dict[str, Any]:
    return read_entry(entry_id, raw, _own)
