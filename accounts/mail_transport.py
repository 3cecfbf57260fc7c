"""How a message leaves: over SMTP (aiosmtplib), or, with no SMTP server set, into the log.

A transport raises :class:`MailRejected` when the server refuses this message for good (a 5xx
answer to its recipient or its data: sending it again cannot help) and :class:`MailUnavailable`
for anything else (no connection, a timeout, a 4xx, a refused login): the outbox waits and tries
again, and the message is not lost.
"""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from accounts.settings import SmtpServer

log = logging.getLogger(__name__)


class MailRejected(Exception):
    """The server refused this message for good."""


class MailUnavailable(Exception):
    """The message could not be sent now; try again later."""


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Hand ``message`` over, or raise :class:`MailRejected` / :class:`MailUnavailable`."""


def _permanent(code: int) -> bool:
    return 500 <= code < 600


class SmtpTransport:
    """One SMTP connection per message (mail is rare: a sign-up, a reset)."""

    def __init__(
        self,
        server: SmtpServer,
        timeout_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``tls_context``: None verifies the server against the system's CAs."""
        self.server = server
        self._timeout = timeout_s
        self._tls = tls_context

    async def send(self, message: EmailMessage) -> None:
        server = self.server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=False if server.implicit_tls else None,  # None: if offered
                timeout=self._timeout,
                tls_context=self._tls,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            if codes and all(_permanent(code) for code in codes):
                raise MailRejected(f"recipients refused: {codes}") from exc
            raise MailUnavailable(f"recipients deferred: {codes}") from exc
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            if _permanent(exc.code):
                raise MailRejected(f"{exc.code} {exc.message}") from exc
            raise MailUnavailable(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailUnavailable(f"{type(exc).__name__}: {exc}") from exc


class LogTransport:
    """Development only: each message goes to the log (INFO), its plain text with its link."""

    async def send(self, message: EmailMessage) -> None:
        part = message.get_body(("plain",))
        body = part.get_content() if isinstance(part, EmailMessage) else ""
        log.info(
            "mail (no VISITATION_SMTP_URL, so not sent) to %s: %s\n%s",
            message["To"],
            message["Subject"],
            body.strip(),
        )


def transport_for(server: SmtpServer | None) -> MailTransport:
    return SmtpTransport(server) if server is not None else LogTransport()
