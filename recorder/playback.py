"""Bytes served per playback, so that a download is audited as one however it is fetched.

A player's Range requests for one opening of a recording share a playback id (``?playback=``).
Its bytes are counted per investigator (the token's subject), call, file (the call file or a
party's view) and id, for :data:`PLAYBACK_TTL_S` from its first request: once the count passes
the file's size (again), the playback took a whole copy, a ``download``. After the lifetime the
id counts from zero again, as a new playback (and a new ``view`` entry).

Keys: ``audit:playback:{playback}`` (:data:`recorder.redis_keys.PLAYBACK`; the slot is
``<subject>|<call_id>|<file>|<id>``; an integer, expiring): audit bookkeeping, beside the
audit's ``once`` keys.
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis

from core.lua import script
from recorder.redis_keys import PLAYBACK

PLAYBACK_TTL_S: Final = 30 * 60

_ADD: Final = script("recorder", "playback_add.lua")  # INCRBY, the lifetime from the first


def copies_crossed(total: int, added: int, size: int) -> list[int]:
    """Which whole copies of a ``size``-byte file a playback passed when ``added`` bytes took
    it to ``total``: the k with k * size < total and (k * size >= total - added), k >= 1."""
    if size <= 0 or added <= 0:
        return []
    before = max(0, (total - added - 1) // size)
    return list(range(before + 1, (total - 1) // size + 1))


class PlaybackMeter:
    def __init__(self, redis: Redis, ttl_s: int = PLAYBACK_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._add = redis.register_script(_ADD)

    async def add(self, subject: str, call_id: str, file: str, playback: str, nbytes: int) -> int:
        """Count ``nbytes`` served to this playback; returns its total so far."""
        key = PLAYBACK(f"{subject}|{call_id}|{file}|{playback}")
        return int(await self._add(keys=[key], args=[nbytes, self.ttl_s]))
