"""Residents' PINs for shared facility tablets: Argon2id hashes only (all Redis access for them).

``pin:<resident_id>`` holds the encoded hash (:class:`accounts.passwords.SecretHasher`); the PIN
itself is never stored. :meth:`Pins.check` costs one hash whether the resident has a PIN or
not, so a tablet cannot tell an unknown resident from a wrong PIN by its timing.
"""

from __future__ import annotations

import re
from typing import Final

from redis.asyncio import Redis

from accounts.passwords import SecretHasher
from accounts.redis_keys import PIN as PIN_KEY
from core.redis_text import text

PIN: Final = re.compile(r"^[0-9]{4,8}$")


class Pins:
    def __init__(self, redis: Redis, hasher: SecretHasher) -> None:
        self._redis = redis
        self._hasher = hasher

    async def set(self, resident_id: str, pin: str) -> None:
        if not PIN.match(pin):
            raise ValueError("a PIN is 4 to 8 digits")
        await self._redis.set(PIN_KEY(resident_id), await self._hasher.hash(pin))

    async def has_pin(self, resident_id: str) -> bool:
        return bool(await self._redis.exists(PIN_KEY(resident_id)))

    async def check(self, resident_id: str | None, pin: str) -> bool:
        """Whether ``pin`` is ``resident_id``'s PIN; None (no such resident) or a resident
        without a PIN costs the same hash and is False."""
        encoded = None
        if resident_id is not None:
            raw = await self._redis.get(PIN_KEY(resident_id))
            encoded = text(raw) if raw is not None else None
        return await self._hasher.verify(encoded, pin)
