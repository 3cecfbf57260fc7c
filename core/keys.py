"""One key per purpose, derived from the server secret (``VISITATION_SECRET``).

``derive_key(secret, Purpose.X)`` is HMAC-SHA256(secret, X's context): a key for one purpose
tells nothing of the secret or of another purpose's key, so a manifest signature can never be
replayed as a bearer token, and whoever holds one key cannot mint tokens.

A key that another party must hold too is configured on its own and never defaults to the
server secret: the billing company's webhook key (``VISITATION_BILLING_WEBHOOK_SECRET``, required
with a webhook URL) and a TURN server's shared secret (``--turn-secret``). ``Purpose.TURN`` is
for code that needs a TURN key of its own without one configured (e.g. a test TURN server).
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum

MIN_SECRET_BYTES = 16


class Purpose(Enum):
    """A purpose and its derivation context (never changed once keys are in use)."""

    TOKENS = b"visitation/bearer-tokens/v1"
    MANIFESTS = b"visitation/recording-manifest/v1"
    TURN = b"visitation/turn-credentials/v1"
    TRANSCRIPTS = b"visitation/recording-transcript/v1"
    TOTP = b"visitation/totp-secrets/v1"  # sealing staff TOTP seeds (accounts.sealed)


def derive_key(secret: bytes, purpose: Purpose) -> bytes:
    """The 32-byte key for ``purpose``."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing key must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(secret, purpose.value, hashlib.sha256).digest()


def same_secret(a: bytes, b: bytes) -> bool:
    """Whether two configured secrets are equal (constant time)."""
    return hmac.compare_digest(a, b)
