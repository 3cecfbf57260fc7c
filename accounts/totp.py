"""Staff's second factor: RFC 6238 TOTP (pyotp; 6 digits, 30 s steps, SHA-1 as every
authenticator app takes), enrolled from an ``otpauth://`` URI shown as a QR code (segno).

A code is accepted for its own 30 s step and one step either side (clock drift), and
:func:`matching_step` says which step it matched, so the caller can accept each step once.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

import pyotp
import segno

ISSUER = "Visitation"
DIGITS = 6
STEP_S = 30
DRIFT_STEPS = 1


def new_secret() -> str:
    """A random base32 secret (160 bits, RFC 4226's recommendation)."""
    return pyotp.random_base32(length=32)


def otpauth_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code: an SVG ``data:`` URI, for an ``<img src>``."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4))


def matching_step(secret: str, code: object, clock: Callable[[], float] = time.time) -> int | None:
    """The time step whose code ``code`` is (now, or one step off), or None."""
    if not isinstance(code, str) or len(code) != DIGITS or not code.isascii():
        return None
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    now = clock()
    current = totp.timecode(now)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(current + offset), code):
            return current + offset
    return None
