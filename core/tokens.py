"""Signed, expiring bearer tokens per role (PyJWT, HS256).

The signing key is derived from the server secret for tokens only (:mod:`core.keys`), so
``visitation token``, ``serve --demo`` and every node sign and verify with the same key, and no
other key (a manifest's, a webhook's) can sign a token. ``iat`` carries sub-second precision:
``visitation revoke`` ends every token issued before its moment.

Each token has an id (``jti``, :func:`token_id`): a digest of its role, subject and ``iat``
(to the microsecond), so a logout can revoke that one token, and a socket, which keeps those
three, can be matched without holding the token itself. A ``device`` token (a shared facility
tablet, subject = facility id) may only sign residents in (``POST /api/v1/tablet/login``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Literal, cast, get_args

import jwt

from core.keys import Purpose, derive_key

Role = Literal["tablet", "family", "monitor", "investigator", "admin", "device"]
ROLES: tuple[str, ...] = get_args(Role)
ISSUER = "visitation"
DEFAULT_TTL_S = 24 * 3600


class TokenError(Exception):
    """The token is missing, malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class Claims:
    role: Role
    subject: str
    expires_at: int
    issued_at: float = 0.0  # 0 for a token without ``iat``: any revocation covers it

    @property
    def token_id(self) -> str:
        return token_id(self.role, self.subject, self.issued_at)


def token_id(role: str, subject: str, issued_at: float) -> str:
    """A token's id (its ``jti``): unique per role, subject and microsecond of issue."""
    seed = f"{role}\x00{subject}\x00{issued_at:.6f}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


class Tokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = derive_key(secret, Purpose.TOKENS)

    def issue(self, role: str, subject: str, ttl_s: int = DEFAULT_TTL_S) -> str:
        return self.mint(role, subject, ttl_s)[0]

    def mint(self, role: str, subject: str, ttl_s: int = DEFAULT_TTL_S) -> tuple[str, Claims]:
        """A new token and its claims (what a sign-in answers: ``expires_at``)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        if not subject or len(subject) > 64:
            raise ValueError("subject must be 1 to 64 characters")
        if ttl_s <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        now = time.time()
        issued_at, expires_at = round(now, 6), int(now) + ttl_s
        payload = {
            "iss": ISSUER,
            "sub": subject,
            "role": role,
            "iat": issued_at,
            "exp": expires_at,
            "jti": token_id(role, subject, issued_at),
        }
        token = jwt.encode(payload, self._secret, algorithm="HS256")
        claims = Claims(cast(Role, role), subject, expires_at, issued_at)
        return token, claims

    def verify(self, token: object) -> Claims:
        if not token:
            raise TokenError("missing token: connect with auth={'token': '<bearer token>'}")
        if not isinstance(token, str):
            raise TokenError("malformed token: expected a string")
        try:
            data = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("invalid token signature") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        role = data.get("role")
        if role not in ROLES:
            raise TokenError("invalid token: unknown role")
        issued_at = data.get("iat", 0.0)
        return Claims(
            role=cast(Role, role),
            subject=str(data["sub"]),
            expires_at=int(data["exp"]),
            issued_at=float(issued_at) if isinstance(issued_at, int | float) else 0.0,
        )


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
