"""The server's VAPID key (RFC 8292) and the ``Authorization`` headers it signs (py-vapid).

One key for the whole deployment, kept like the signing secret: ``VISITATION_VAPID_PRIVATE_KEY``
(a PEM private key, or the base64url raw 32-byte key), else ``vapid_private.pem`` generated once
in the data dir (0600, made whole and linked in, so racing processes share one, see
:func:`core.permissions.create_once`). Browsers bind a
subscription to the public key they were given, so every node must sign with the same one.

:class:`VapidSigner` signs a JWT per push-service origin (``aud``) and reuses it until an hour
before it expires (``exp`` 12 h ahead: RFC 8292 allows at most 24 h).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from core.config import ConfigError
from core.permissions import create_once

KEY_ENV = "VISITATION_VAPID_PRIVATE_KEY"
CONTACT_ENV = "VISITATION_PUSH_CONTACT"
KEY_FILE = "vapid_private.pem"
JWT_LIFETIME_S = 12 * 3600
JWT_RENEW_BEFORE_S = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _from_text(text: str) -> Vapid02:
    stripped = text.strip()
    if "-----BEGIN" in stripped:
        return Vapid02.from_pem(stripped.encode())
    return Vapid02.from_string(stripped)


def load_vapid(data_dir: Path) -> Vapid02:
    """The deployment's VAPID key (see the module doc); ConfigError if the one given is bad."""
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            return _from_text(env)
        except Exception:
            raise ConfigError(
                f"{KEY_ENV}: not a P-256 private key (PEM, or base64url of the raw 32 bytes)"
            ) from None
    path = data_dir / KEY_FILE
    try:
        return _from_text(path.read_text())
    except FileNotFoundError:
        pass
    except Exception:
        raise ConfigError(f"{path}: not a VAPID private key (PEM)") from None
    vapid = Vapid02()
    vapid.generate_keys()
    return _from_text(create_once(path, vapid.private_pem()).decode())  # or the first one's


def public_key(vapid: Vapid02) -> str:
    """The base64url uncompressed P-256 point, for ``pushManager.subscribe``."""
    raw: bytes = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(raw)


def check_contact(contact: str) -> str:
    if not contact.startswith(("mailto:", "https:")) or len(contact) > 256 or " " in contact:
        raise ConfigError(f"{CONTACT_ENV}: a mailto: or https: URI, e.g. mailto:ops@example.org")
    return contact


class VapidSigner:
    """``Authorization: vapid t=<JWT>,k=<key>`` per audience, cached until near its expiry."""

    def __init__(
        self, vapid: Vapid02, contact: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.vapid = vapid
        self.contact = check_contact(contact)
        self.public_key = public_key(vapid)
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}

    def authorization(self, audience: str) -> str:
        now = self._clock()
        cached = self._cache.get(audience)
        if cached is not None and cached[1] - JWT_RENEW_BEFORE_S > now:
            return cached[0]
        exp = int(now) + JWT_LIFETIME_S
        headers = self.vapid.sign({"aud": audience, "exp": exp, "sub": self.contact})
        value = str(headers["Authorization"])
        if len(self._cache) > 1000:  # a handful of push services in practice
            self._cache.clear()
        self._cache[audience] = (value, float(exp))
        return value
