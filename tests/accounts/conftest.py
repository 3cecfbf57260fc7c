"""Fixtures of the accounts tests: cheap Argon2 parameters where speed is not the point."""

from __future__ import annotations

from functools import cache

from accounts.passwords import SecretHasher


@cache
def cheap_hasher() -> SecretHasher:
    """Argon2id with the smallest cost argon2-cffi accepts: for tests that hash many times."""
    return SecretHasher(time_cost=1, memory_cost_kib=8, parallelism=1)
