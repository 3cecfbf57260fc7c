"""STUN/TURN servers for ``RTCPeerConnection({iceServers})``, with TURN REST API credentials.

PROTOCOL.md v1.1: ``session.info`` hands every client ``ice_servers``; TURN credentials are
time-limited and derived from the TURN server's shared secret (coturn ``use-auth-secret``)::

    username   = "<unix expiry>:<role>:<subject>"
    credential = base64(HMAC-SHA1(turn_secret, username))

valid :data:`CREDENTIAL_TTL_S` (24 h). The TURN server recomputes the HMAC and checks the
expiry, so nothing is stored anywhere. SFU workers mint their own (role ``sfu``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Final

from pydantic import BaseModel, ConfigDict

CREDENTIAL_TTL_S: Final = 24 * 3600
_URL = re.compile(r"(stun|stuns|turn|turns):[^?\s]+(\?transport=(udp|tcp))?")


class IceServer(BaseModel):
    """One entry of ``ice_servers`` (the WebRTC ``RTCIceServer`` dictionary)."""

    model_config = ConfigDict(frozen=True)

    urls: list[str]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


def turn_credential(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``, what coturn's ``use-auth-secret`` checks."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def turn_username(
    role: str, subject: str, *, ttl_s: int = CREDENTIAL_TTL_S, now: float | None = None
) -> str:
    expiry = int(time.time() if now is None else now) + ttl_s
    return f"{expiry}:{role}:{subject}"


def check_url(url: str) -> str:
    """``url`` if it is a STUN or TURN URL (``turn:host:3478?transport=udp``), else ValueError."""
    if not _URL.fullmatch(url):
        raise ValueError(
            f"bad STUN/TURN URL {url!r}: want stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp]"
        )
    return url


@dataclass(frozen=True)
class IceServers:
    """The deployment's STUN and TURN URLs and the TURN secret."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for url in (*self.stun_urls, *self.turn_urls):
            check_url(url)
        if any(not u.startswith("stun") for u in self.stun_urls):
            raise ValueError("--stun-url takes stun: or stuns: URLs")
        if any(not u.startswith("turn") for u in self.turn_urls):
            raise ValueError("--turn-url takes turn: or turns: URLs")
        if self.turn_urls and not self.turn_secret:
            raise ValueError("--turn-url needs --turn-secret (the TURN server's use-auth-secret)")

    def for_subject(self, role: str, subject: str, *, now: float | None = None) -> list[IceServer]:
        """What ``session.info`` hands ``role``/``subject``: STUN, then TURN with credentials."""
        servers: list[IceServer] = []
        if self.stun_urls:
            servers.append(IceServer(urls=list(self.stun_urls)))
        if self.turn_urls:
            assert self.turn_secret is not None
            username = turn_username(role, subject, now=now)
            credential = turn_credential(self.turn_secret, username)
            servers.append(
                IceServer(urls=list(self.turn_urls), username=username, credential=credential)
            )
        return servers
