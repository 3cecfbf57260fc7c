"""Secrets that must be read back (staff TOTP seeds), kept sealed in Redis.

A password is stored as a hash, but a TOTP seed must be read to check a code, so a copy of
the database (a backup, a replica, an RDB file) would hand out every staff member's second
factor. :class:`SecretSeal` encrypts them with AES-256-GCM under a key derived from the server
secret (:data:`core.keys.Purpose.TOTP`), which is never in Redis. The owner's id is the
associated data: a sealed seed copied to another staff member's record does not open.

Stored form: ``v1.`` + base64url(12-byte nonce + ciphertext + tag). A value without the
prefix is a seed written before sealing (pyotp's base32 has no ``.``): it still opens, as
itself, and :class:`accounts.credentials.Credentials` seals it in place on first use.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.keys import Purpose, derive_key

PREFIX: Final = "v1."
NONCE_BYTES: Final = 12


class SealBroken(ValueError):
    """A sealed value that does not open: another key, another owner, or damaged."""


class SecretSeal:
    """Seal and open short secrets with a key of their own; see the module docstring."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a seal key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: bytes) -> SecretSeal:
        """The seal of TOTP seeds for the server secret ``secret``."""
        return cls(derive_key(secret, Purpose.TOTP))

    def seal(self, plain: str, owner: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode(), owner.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, stored: str, owner: str) -> str:
        """The secret in ``stored`` (a value from before sealing is returned as it is)."""
        if not is_sealed(stored):
            return stored
        body = stored[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode())
            return plain.decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError) as exc:
            raise SealBroken(f"a sealed secret of {owner!r} does not open") from exc


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
