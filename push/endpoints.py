"""Where the server may send a push: the allowed push-service prefixes (SSRF-proof by construction).

A subscription's ``endpoint`` is a URL the browser got from its push service, but it reaches the
server from a client, so the server never sends to it unless it lies under one of the prefixes of
``VISITATION_PUSH_ENDPOINTS`` (by default the browsers' push services). The check is done on the
parsed URL, not on its text: same scheme, same host (a ``*`` in a prefix's host stands for one
run of letters, digits and hyphens, e.g. ``https://wns2-*.notify.windows.com/``), same port, and
a path under the prefix's path; no user info, no fragment. It runs when a subscription is stored
and again before every send, and what is sent to is the parsed URL that passed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from yarl import URL

ENDPOINTS_ENV = "VISITATION_PUSH_ENDPOINTS"
DEFAULT_ENDPOINTS: tuple[str, ...] = (
    "https://fcm.googleapis.com/",
    "https://updates.push.services.mozilla.com/",
    "https://web.push.apple.com/",
    "https://wns2-*.notify.windows.com/",
)
MAX_ENDPOINT_CHARS = 1024
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


class EndpointRefused(ValueError):
    """The endpoint is not one the server may send to; the message says why."""


@dataclass(frozen=True)
class Prefix:
    scheme: str
    host: re.Pattern[str]
    port: int
    path: str
    text: str

    @classmethod
    def parse(cls, text: str) -> Prefix:
        url = URL(text)
        if url.scheme not in ("https", "http") or not url.raw_host:
            raise ValueError(f"{text!r} is not an http(s) URL prefix")
        if url.user is not None or url.password is not None or url.query_string or url.fragment:
            raise ValueError(f"{text!r}: a prefix has no user info, query or fragment")
        if url.port is None:
            raise ValueError(f"{text!r}: no port")
        labels = [
            re.escape(label).replace(r"\*", "[a-z0-9-]+")
            for label in url.raw_host.lower().split(".")
        ]
        path = url.raw_path or "/"
        return cls(
            url.scheme, re.compile("^" + r"\.".join(labels) + "$"), url.port, path, text.strip()
        )

    def covers(self, url: URL) -> bool:
        host = (url.raw_host or "").lower()
        if url.scheme != self.scheme or url.port != self.port or not self.host.match(host):
            return False
        path = url.raw_path or "/"
        segments = path.lower().split("/")
        if any(s in (".", "..") or "%2e" in s or "%2f" in s or "\\" in s for s in segments):
            return False  # never a path that a server would resolve outside the prefix
        return path.startswith(self.path) or (path + "/") == self.path


class EndpointPolicy:
    """The allowed prefixes, and the one check of an endpoint against them."""

    def __init__(self, prefixes: Iterable[str] = DEFAULT_ENDPOINTS) -> None:
        self.prefixes = [Prefix.parse(p) for p in prefixes]
        if not self.prefixes:
            raise ValueError("at least one push endpoint prefix is needed")

    @classmethod
    def from_env(cls) -> EndpointPolicy:
        raw = os.environ.get(ENDPOINTS_ENV, "")
        items = [item.strip() for item in raw.split(",") if item.strip()]
        try:
            return cls(items or DEFAULT_ENDPOINTS)
        except ValueError as exc:
            raise ValueError(f"{ENDPOINTS_ENV}: {exc}") from None

    def check(self, endpoint: str) -> URL:
        """The URL to send to; :class:`EndpointRefused` naming why if it may not be used."""
        if len(endpoint) > MAX_ENDPOINT_CHARS:
            raise EndpointRefused(f"endpoint: longer than {MAX_ENDPOINT_CHARS} characters")
        if not _PRINTABLE.match(endpoint):
            raise EndpointRefused("endpoint: not a URL (spaces or non-ASCII characters)")
        try:
            url = URL(endpoint, encoded=True)
        except ValueError:
            raise EndpointRefused("endpoint: not a URL") from None
        if not url.is_absolute() or url.scheme not in ("https", "http") or not url.raw_host:
            raise EndpointRefused("endpoint: not an absolute http(s) URL")
        if url.user is not None or url.password is not None or url.fragment:
            raise EndpointRefused("endpoint: user info and fragments are not allowed")
        if not any(prefix.covers(url) for prefix in self.prefixes):
            raise EndpointRefused(
                "endpoint: not a push service this server sends to "
                "(allowed: " + ", ".join(p.text for p in self.prefixes) + ")"
            )
        return url
