"""Sealed TOTP seeds (accounts.sealed) in a credential store on a real Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from accounts.credentials import Credentials
from accounts.redis_keys import LOGIN_STAFF
from accounts.sealed import SealBroken, SecretSeal
from tests.system.accounts.conftest import cheap_hasher

SECRET = b"s" * 32


def test_a_seal_opens_for_its_owner_and_key_only() -> None:
    seal = SecretSeal.from_secret(SECRET)
    sealed = seal.seal("JBSWY3DPEHPK3PXP", "S1")
    assert sealed.startswith("v1.") and "JBSWY3DPEHPK3PXP" not in sealed
    assert sealed != seal.seal("JBSWY3DPEHPK3PXP", "S1")  # a fresh nonce each time
    assert seal.open(sealed, "S1") == "JBSWY3DPEHPK3PXP"
    assert seal.open("JBSWY3DPEHPK3PXP", "S1") == "JBSWY3DPEHPK3PXP"  # from before sealing
    for broken in (
        lambda: seal.open(sealed, "S2"),
        lambda: SecretSeal.from_secret(b"t" * 32).open(sealed, "S1"),
        lambda: seal.open(sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1], "S1"),
        lambda: seal.open("v1.!!!", "S1"),
        lambda: seal.open("v1.", "S1"),
    ):
        with pytest.raises(SealBroken):
            broken()
    with pytest.raises(ValueError):
        SecretSeal(b"short")


async def test_a_store_under_another_secret_cannot_read_the_seed(redis: Redis) -> None:
    mine = Credentials(redis, cheap_hasher(), SecretSeal.from_secret(SECRET))
    await mine.begin_totp("S1", "JBSWY3DPEHPK3PXP")
    assert await mine.pending_totp("S1") == "JBSWY3DPEHPK3PXP"
    assert not await mine.enable_totp("S1", "ANOTHERSECRETXYZ")  # not the pending one
    assert await mine.enable_totp("S1", "JBSWY3DPEHPK3PXP")
    assert await mine.totp_secret("S1") == "JBSWY3DPEHPK3PXP"
    other = Credentials(redis, cheap_hasher(), SecretSeal.from_secret(b"t" * 32))
    with pytest.raises(SealBroken):
        await other.totp_secret("S1")
    with pytest.raises(RuntimeError, match="needs the seal"):
        await Credentials(redis, cheap_hasher()).totp_secret("S1")
    assert (await redis.hget(LOGIN_STAFF("S1"), "totp") or b"").startswith(b"v1.")
