"""Secrets stored as memory-hard hashes (Argon2id, argon2-cffi), and the password policy.

:class:`SecretHasher` hashes passwords and PINs with Argon2id at OWASP's recommended minimum
(:data:`TIME_COST` iterations over :data:`MEMORY_COST_KIB` KiB, :data:`PARALLELISM` lane; about
40 ms on one core). ``verify(None, secret)`` is the unknown-account path: it still verifies
``secret`` against a dummy hash made with the same parameters, so a sign-in costs the same
whether the account exists or not. Hashing runs in a thread, so the event loop keeps serving.

:func:`check_password` refuses a password under :data:`MIN_LENGTH` characters, one that is the
e-mail (or its local part), and one of zxcvbn's 30,000 most common passwords (its shipped
frequency list, compared case-insensitively).
"""

from __future__ import annotations

import asyncio
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

TIME_COST = 2
MEMORY_COST_KIB = 19_456  # 19 MiB
PARALLELISM = 1
MIN_LENGTH = 10
MAX_LENGTH = 1024  # a longer "password" only costs us hashing time


class PasswordRefused(ValueError):
    """The password breaks a rule; the message names it."""


class SecretHasher:
    """Argon2id hashes of passwords and PINs (async: each hash runs in a worker thread)."""

    def __init__(
        self,
        time_cost: int = TIME_COST,
        memory_cost_kib: int = MEMORY_COST_KIB,
        parallelism: int = PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )
        # Same parameters as every real hash, for a secret nobody knows.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(32))

    def hash_now(self, secret: str) -> str:
        """The encoded hash (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), in this thread."""
        return self._hasher.hash(secret)

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, secret)

    def verify_now(self, encoded: str | None, secret: str) -> bool:
        try:
            ok = self._hasher.verify(self._dummy if encoded is None else encoded, secret)
        except (VerificationError, InvalidHashError):
            return False
        return ok and encoded is not None

    async def verify(self, encoded: str | None, secret: str) -> bool:
        """Whether ``secret`` matches ``encoded``; None (no such account) costs the same and
        is always False."""
        return await asyncio.to_thread(self.verify_now, encoded, secret)

    def needs_rehash(self, encoded: str) -> bool:
        """The hash was made with other parameters than this hasher's (rehash at sign-in)."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """One of the well-known passwords of zxcvbn's list (case-insensitive)."""
    return password.lower() in _common_passwords()


def check_password(password: str, email: str | None = None) -> None:
    """Raise :class:`PasswordRefused` naming the first rule ``password`` breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(f"the password must have at most {MAX_LENGTH} characters")
    if "\x00" in password:
        raise PasswordRefused("the password must not contain a NUL character")
    if email:
        lowered = password.strip().lower()
        address = email.strip().lower()
        local = address.split("@", 1)[0]
        if lowered in (address, local):
            raise PasswordRefused("the password must not be your e-mail address")
    if is_common(password):
        raise PasswordRefused("the password is a well-known common password; choose another")
