"""A family's settled calls, newest first: what its statement and ``GET /api/v1/account/calls``
list. Each call is recorded once (``call_history_record.lua``), however often its settlement
is retried."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from billing_hooks.redis_keys import FAMILY_CALL_IDS, FAMILY_CALLS
from core.lua import script


class FamilyCalls:
    """All Redis access for the families' call histories."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._record = redis.register_script(script(__package__, "call_history_record.lua"))

    async def record(self, family_id: str, call_id: str, record: dict[str, Any]) -> bool:
        """Add ``record`` at the head of the family's history unless the call is there already;
        whether it was added."""
        keys = [FAMILY_CALLS(family_id), FAMILY_CALL_IDS(family_id)]
        added, _ = await self._record(keys=keys, args=[call_id, json.dumps(record)])
        return bool(added)

    async def latest(self, family_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The family's last ``limit`` settled calls, newest first."""
        raw = await self._redis.lrange(FAMILY_CALLS(family_id), 0, limit - 1)
        return [json.loads(item) for item in raw]
