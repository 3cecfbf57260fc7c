"""Settings of accounts and mail, from the environment (PROTOCOL v1.2).

- ``VISITATION_SMTP_URL``: ``smtp://[user:pass@]host:port`` (STARTTLS when the server offers
  it) or ``smtps://...`` (TLS from the first byte); unset: mail is written to the log
  (development only);
- ``VISITATION_MAIL_FROM``: the sender address (required with an SMTP URL);
- ``VISITATION_PUBLIC_URL``: where the links in mail point; default: the address the node
  serves (``http://host:port``; a wildcard host: 127.0.0.1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from core.config import ConfigError, Settings

DEFAULT_SMTP_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """ConfigError naming what is wrong with ``url``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"VISITATION_SMTP_URL: {exc}") from None
        if parts.scheme not in DEFAULT_SMTP_PORTS:
            raise ConfigError("VISITATION_SMTP_URL: use smtp://host:port or smtps://host:port")
        if not parts.hostname:
            raise ConfigError("VISITATION_SMTP_URL: no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError("VISITATION_SMTP_URL: only [user:pass@]host:port, no path")
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_SMTP_PORTS[parts.scheme],
            implicit_tls=parts.scheme == "smtps",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def __repr__(self) -> str:  # never the password
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpServer({scheme}://{user}{self.host}:{self.port})"


@dataclass(frozen=True)
class AccountSettings:
    public_url: str
    mail_from: str
    smtp: SmtpServer | None = None  # None: mail goes to the log

    @classmethod
    def from_env(cls, node: Settings) -> AccountSettings:
        smtp_url = os.environ.get("VISITATION_SMTP_URL", "").strip()
        smtp = SmtpServer.parse(smtp_url) if smtp_url else None
        mail_from = os.environ.get("VISITATION_MAIL_FROM", "").strip()
        if smtp is not None and not mail_from:
            raise ConfigError(
                "VISITATION_MAIL_FROM must be set when VISITATION_SMTP_URL is (the sender "
                "address of sign-up and reset e-mails)"
            )
        if "\n" in mail_from or "\r" in mail_from:
            raise ConfigError("VISITATION_MAIL_FROM: one address on one line")
        public_url = os.environ.get("VISITATION_PUBLIC_URL", "").strip().rstrip("/")
        if public_url and not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"VISITATION_PUBLIC_URL: {public_url!r} is no http(s) URL")
        host = "127.0.0.1" if node.host in ("", "0.0.0.0", "::") else node.host
        host = f"[{host}]" if ":" in host else host
        return cls(
            public_url=public_url or f"http://{host}:{node.port}",
            mail_from=mail_from or "visitation@localhost",
            smtp=smtp,
        )
