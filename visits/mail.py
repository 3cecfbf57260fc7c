"""The e-mail reminder of a visit (beside the push): plain text and HTML, to the family's
sign-in address, through the deployment's mail outbox (passed in: the accounts' outbox).

Its Message-ID is stable per visit and reminder, so a reminder handled twice (a retried timer)
is one message in the outbox."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from zoneinfo import ZoneInfo

from visits.record import Visit

log = logging.getLogger(__name__)

EmailOf = Callable[[str], Awaitable[str | None]]
Queue = Callable[[EmailMessage], Awaitable[None]]
Verified = Callable[[str], Awaitable[bool]]


def _when(visit: Visit) -> str:
    start = datetime.fromtimestamp(visit.start, ZoneInfo(visit.timezone))
    return f"{start:%A %B %d at %H:%M} ({visit.timezone})"


class VisitMail:
    def __init__(
        self,
        email_of: EmailOf,
        queue: Queue,
        mail_from: str,
        public_url: str,
        verified: Verified | None = None,
    ) -> None:
        self._email_of = email_of
        self._verified = verified
        self._queue = queue
        self._from = mail_from
        self._link = f"{public_url.rstrip('/')}/family"

    def letter(self, to: str, visit: Visit, before_s: int) -> EmailMessage:
        soon = "in 15 minutes" if before_s < 3600 else "tomorrow"
        who = visit.resident_name or visit.resident_id
        paragraphs = [
            f"Your video visit with {who} at {visit.facility_name or visit.facility_id} is {soon}:",
            _when(visit),
            "Open the app a few minutes before: the call rings when the resident joins.",
            self._link,
        ]
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = f"Reminder: your visit with {who} {soon}"
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = f"<visit-{visit.visit_id}-{before_s}@visitation.invalid>"
        message.set_content(
            "\n\n".join(paragraphs) + "\n",
            cte="7bit" if all(p.isascii() for p in paragraphs) else None,
        )
        body = "".join(
            f'<p><a href="{html.escape(p)}">Open the app</a></p>'
            if p == self._link
            else f"<p>{html.escape(p)}</p>"
            for p in paragraphs
        )
        message.add_alternative(
            f"<!doctype html><html><body>{body}</body></html>\n", subtype="html"
        )
        return message

    async def reminder(self, visit: Visit, before_s: int) -> bool:
        """Queue the reminder if the family signs in with a (confirmed) e-mail address."""
        to = await self._email_of(visit.family_id)
        if not to:
            return False
        if self._verified is not None and not await self._verified(visit.family_id):
            return False
        await self._queue(self.letter(to, visit, before_s))
        return True
