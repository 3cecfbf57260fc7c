"""A durable mail outbox (a Redis stream, as the billing webhooks') and the loop that sends it.

:meth:`MailOutbox.queue` appends a whole message (its Message-ID as the event id, so appending it
again after an unacknowledged write sends it once) to the stream ``mail:outbox``, through
:class:`billing_hooks.outbox.Outbox`: the same append, lease and dead-letter storage. On every
node a :class:`MailSender` runs; the one holding the lease sends, oldest first, and deletes a
message once the transport took it. A message the server refuses for good is retried (after a
backoff) up to ``max_rejections`` times, then moved to ``mail:outbox:dead``; when the server cannot be reached
(or answers 4xx) sending pauses with exponential backoff and jitter, and nothing is lost.
"""

from __future__ import annotations

import email
import email.policy
import logging
import random
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage

from accounts.mail_transport import MailRejected, MailTransport
from accounts.redis_keys import MAIL_OUTBOX
from billing_hooks.outbox import Outbox, OutboxEntry
from core.tasks import Periodic

log = logging.getLogger(__name__)

STREAM = MAIL_OUTBOX()


class MailOutbox:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def queue(self, message: EmailMessage) -> None:
        """Keep ``message`` until it is sent (durably: behind Sentinel, once a replica has it)."""
        event_id = str(message["Message-ID"] or uuid.uuid4().hex)
        await self.outbox.append(event_id, message.as_string(policy=email.policy.SMTP))

    async def length(self) -> int:
        return await self.outbox.length()


def parse(entry: OutboxEntry) -> EmailMessage:
    parsed = email.message_from_bytes(entry.body, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class MailSender:
    """Sends what the outbox holds through ``transport``; ``start``/``stop`` bound its loop."""

    def __init__(
        self,
        outbox: MailOutbox,
        transport: MailTransport,
        *,
        interval_s: float = 0.2,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        batch: int = 50,
        max_rejections: int = 5,
        lease_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox.outbox
        self.transport = transport
        self._base = base_backoff_s
        self._max = max_backoff_s
        self._batch = batch
        self._max_rejections = max_rejections
        self._lease_s = lease_s
        self._clock = clock
        self._holder = uuid.uuid4().hex
        self.failures = 0
        self._resume_at = 0.0
        self._loop = Periodic("mail-outbox", self.send_due, interval_s, delay_first=False)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        try:
            await self._outbox.drop_lease(self._holder)
        except Exception:
            log.warning("could not drop the lease of %s", self._outbox.stream)

    async def send_due(self) -> int:
        """One pass: unless backing off, and while holding the lease, send what waits; how many
        were sent."""
        if self._clock() < self._resume_at or not await self._outbox.length():
            return 0  # backing off, or nothing to send (and no lease written for nothing)
        sent = 0
        while await self._outbox.take_lease(self._holder, self._lease_s):
            entries = await self._outbox.head(self._batch)
            for entry in entries:
                if not await self._outbox.take_lease(self._holder, self._lease_s):
                    return sent  # another node holds it now
                if await self._send(entry):
                    sent += 1
                elif self._resume_at > self._clock():
                    return sent  # backing off
            if len(entries) < self._batch:
                break
        return sent

    async def _send(self, entry: OutboxEntry) -> bool:
        try:
            message = parse(entry)
        except Exception as exc:  # nothing of ours, and never sendable: out of the way
            await self._outbox.rejected(entry, 1, f"unreadable: {exc}")
            return False
        try:
            await self.transport.send(message)
        except MailRejected as exc:
            if await self._outbox.rejected(entry, self._max_rejections, str(exc)):
                log.error("mail %s to %s dead-lettered: %s", entry.event_id, message["To"], exc)
            else:
                self._back_off(entry, f"refused: {exc}")
            return False
        except Exception as exc:  # MailUnavailable, or a transport's own surprise
            self._back_off(entry, f"{type(exc).__name__}: {exc}")
            return False
        await self._outbox.delivered(entry)
        self.failures = 0
        return True

    def _back_off(self, entry: OutboxEntry, why: str) -> None:
        self.failures += 1
        delay = min(self._max, self._base * 2 ** min(self.failures - 1, 30))
        delay *= random.uniform(0.75, 1.0)
        self._resume_at = self._clock() + delay
        log.warning(
            "mail %s not sent (%s), retry #%d in %.2fs", entry.event_id, why, self.failures, delay
        )
