"""The append-only audit log of identity reviews: every image view and every decision.

Like the recordings' log (:mod:`recorder.audit`), a Redis stream: ``identity_review:audit`` (``XADD``
only: nothing here edits, trims or deletes an entry), each entry who (staff id, role), did
what (``view`` an image, ``review`` a submission), to which family, when, and from where.
``identity_review:audit:family:<id>`` lists a family's entry ids, so its history is read without a
scan. An entry and its index are written in one step. What the two logs share is
:mod:`core.audit_trail`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from accounts.redis_keys import IDENTITY_AUDIT, IDENTITY_AUDIT_FAMILY
from core.audit_trail import Actor, AuditTrail, entry_fields, indexed_entries, read_entry
from core.lua import script
from core.redis_text import text

STREAM: Final = IDENTITY_AUDIT()
Viewer = Actor  # who viewed or reviewed, and from where
Action = Literal["view", "review"]


class IdentityAudit(AuditTrail):
    APPEND = script(__package__, "identity_audit_append.lua")

    async def append(
        self,
        who: Viewer,
        action: Action,
        family_id: str,
        detail: Mapping[str, Any] | None = None,
    ) -> str:
        own = {"action": action, "family_id": family_id}
        args = entry_fields(self._clock(), who, own, detail)
        added = await self._append(keys=[STREAM, IDENTITY_AUDIT_FAMILY(family_id)], args=args)
        return text(added)

    async def for_family(self, family_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest ``limit`` entries about a family, oldest first."""
        found = await indexed_entries(self._redis, STREAM, IDENTITY_AUDIT_FAMILY(family_id), limit)
        return [read_entry(eid, fields, _own) for eid, fields in found]


def _own(data: Mapping[str, str]) -> dict[str, Any]:
    return {"action": data["action"], "family_id": data["family_id"]}
