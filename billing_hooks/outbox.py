"""A durable outbox of billing events in a Redis stream, and the loop that delivers it.

``Outbox.append`` is one atomic script run: it drops an event id seen before (a retried billing
operation re-emits the same id) and otherwise adds the event to the stream. The delivery loop runs
on every node but only the node holding the outbox lease sends, oldest first: it POSTs the JSON
body with ``X-Visitation-Signature: sha256=<hex HMAC-SHA256 of the body>`` and
``X-Visitation-Event-Id``, and deletes the entry only after a 2xx. A network error, timeout, 408,
425, 429 or 5xx pauses delivery with exponential backoff (the receiver is down, nothing is lost);
any other answer counts as a rejection of that event, and after ``max_rejections`` the event
moves to the dead-letter stream ``<stream>:dead`` so it cannot block the others forever.
Delivery is at least once: a receiver that answered 2xx but whose answer was lost sees the event
again, with the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
import uuid
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from billing_hooks.durability import required, run_durably
from billing_hooks.redis_keys import OUTBOX, outbox_keys
from core.lua import script
from core.redis_text import text
from core.tasks import Periodic

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Visitation-Signature"
EVENT_ID_HEADER = "X-Visitation-Event-Id"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Visitation-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does: constant-time compare of the header with our own signature."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class OutboxEntry:
    stream_id: str
    event_id: str
    body: bytes


class Outbox:
    """The stream ``stream`` plus its dedupe markers, lease, rejection counts and dead letters
    (their names: :func:`billing_hooks.redis_keys.outbox_keys`)."""

    def __init__(
        self, redis: Redis, stream: str = OUTBOX.stream(), dedupe_ttl_s: int = 7 * 86400
    ) -> None:
        self.redis = redis
        self.keys = outbox_keys(stream)
        self.stream = self.keys.stream()
        self.dead_stream = self.keys.dead()
        self._rejections = self.keys.rejections()
        self._dedupe_ttl = dedupe_ttl_s
        self._append = redis.register_script(script(__package__, "outbox_append.lua"))
        self._lease = redis.register_script(script(__package__, "outbox_lease_take.lua"))
        self._unlease = redis.register_script(script(__package__, "outbox_lease_drop.lua"))

    async def append(self, event_id: str, body: str) -> bool:
        """Add an event; False (and nothing written) if this id was appended before. Behind
        Sentinel, either way only once a replica has it (else
        :class:`billing_hooks.durability.NotDurable`: append it again, it is deduplicated)."""
        keys = [self.stream, self.keys.seen(event_id)]
        args: list[str | int] = [event_id, body, self._dedupe_ttl]
        if not required(self.redis).replicas:
            return bool(await self._append(keys=keys, args=args))

        async def queue(pipe: Pipeline) -> None:
            await self._append(keys=keys, args=args, client=pipe)

        done = await run_durably(self.redis, queue)
        return bool(done.check(f"the billing event {event_id}")[0])

    async def head(self, limit: int) -> list[OutboxEntry]:
        rows = await self.redis.xrange(self.stream, "-", "+", count=limit)
        out: list[OutboxEntry] = []
        for stream_id, fields in rows or []:
            values = {text(k): v for k, v in (fields or {}).items()}
            body = values.get("body") or b""
            if stream_id is None:
                continue
            out.append(
                OutboxEntry(
                    stream_id=text(stream_id),
                    event_id=text(values.get("id") or b""),
                    body=body.encode() if isinstance(body, str) else body,
                )
            )
        return out

    async def delivered(self, entry: OutboxEntry) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xdel(self.stream, entry.stream_id)
            pipe.hdel(self._rejections, entry.stream_id)
            await pipe.execute()

    async def rejected(self, entry: OutboxEntry, max_rejections: int, why: str) -> bool:
        """Count a rejection; at ``max_rejections`` move the entry to the dead letters (True)."""
        count = int(await self.redis.hincrby(self._rejections, entry.stream_id, 1))
        if count < max_rejections:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_stream, {"id": entry.event_id, "body": entry.body, "why": why})
            pipe.xdel(self.stream, entry.stream_id)
            pipe.hdel(self._rejections, entry.stream_id)
            await pipe.execute()
        return True

    async def length(self) -> int:
        return int(await self.redis.xlen(self.stream))

    async def take_lease(self, holder: str, ttl_s: float) -> bool:
        keys = [self.keys.lease()]
        return bool(await self._lease(keys=keys, args=[holder, int(ttl_s * 1000)]))

    async def drop_lease(self, holder: str) -> None:
        await self._unlease(keys=[self.keys.lease()], args=[holder])


class OutboxDelivery:
    """The delivery loop for one outbox and one URL."""

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        secret: bytes | str,
        *,
        interval_s: float = 0.2,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        timeout_s: float = 10.0,
        batch: int = 100,
        max_rejections: int = 10,
        lease_s: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.url = url
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._base = base_backoff_s
        self._max = max_backoff_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._batch = batch
        self._max_rejections = max_rejections
        self._lease_s = max(lease_s, timeout_s * 2)
        self._holder = uuid.uuid4().hex
        self._failures = 0
        self._resume_at = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._loop = Periodic("billing-outbox", self.deliver_due, interval_s, delay_first=False)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        try:
            await self.outbox.drop_lease(self._holder)
        except Exception:
            log.warning("could not drop the outbox lease of %s", self.outbox.stream)

    async def deliver_due(self) -> int:
        """One pass: if not backing off and holding the lease, send what is due; returns how many
        were delivered."""
        if time.monotonic() < self._resume_at:
            return 0
        delivered = 0
        while await self.outbox.take_lease(self._holder, self._lease_s):
            entries = await self.outbox.head(self._batch)
            for entry in entries:
                if not await self.outbox.take_lease(self._holder, self._lease_s):
                    return delivered  # renewed per event; lost it: another node sends now
                outcome = await self._post(entry)
                if outcome == "ok":
                    await self.outbox.delivered(entry)
                    self._failures = 0
                    delivered += 1
                    continue
                if outcome.startswith("rejected") and await self.outbox.rejected(
                    entry, self._max_rejections, outcome
                ):
                    log.error("billing event %s dead-lettered: %s", entry.event_id, outcome)
                    continue
                self._back_off(entry, outcome)
                return delivered
            if len(entries) < self._batch:
                break
        return delivered

    def _back_off(self, entry: OutboxEntry, why: str) -> None:
        self._failures += 1
        delay = min(self._max, self._base * 2 ** min(self._failures - 1, 30))
        delay *= random.uniform(0.75, 1.0)
        self._resume_at = time.monotonic() + delay
        log.warning(
            "billing webhook %s: event %s not delivered (%s), retry #%d in %.2fs",
            self.url,
            entry.event_id,
            why,
            self._failures,
            delay,
        )

    async def _post(self, entry: OutboxEntry) -> str:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, entry.body),
            EVENT_ID_HEADER: entry.event_id,
        }
        try:
            async with self._session.post(self.url, data=entry.body, headers=headers) as resp:
                status = resp.status
                await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return "ok"
        if status in (408, 425, 429) or status >= 500:
            return f"unavailable: HTTP {status}"
        return f"rejected: HTTP {status}"
