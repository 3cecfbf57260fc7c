"""The background sender: delivers the push outbox as RFC 8030 requests, never on a call's path.

Every node runs the loop; only the holder of the outbox lease sends. Each pass promotes the
retries that are due, then starts a send for every message at the head of the stream that is
not already being sent, as long as a slot is free: at most ``concurrency`` requests at once,
at most ``per_origin`` of them to one push service, one at a time per subscription (its
messages go out in order). A request is one POST built with pywebpush (``aes128gcm`` body,
RFC 8291) and py-vapid (the VAPID ``Authorization``, RFC 8292), ``TTL`` the message's time
left and ``Urgency`` its type's; redirects are not followed, timeouts are short and at most
``max_response_bytes`` of the answer are read. So a slow or hostile push service costs a slot
for at most the timeout and delays nothing else.

Outcomes: 2xx, done; 404 or 410, the subscription is removed; 408, 429 or 5xx (or no answer),
retried with exponential backoff (or the service's ``Retry-After``) while the message's TTL
lasts; anything else is dropped. The endpoint is checked against the allowed prefixes again
before every send.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from pywebpush import WebPusher
from yarl import URL

from billing_hooks.outbox import OutboxEntry
from core.tasks import Periodic, TaskPool
from push.endpoints import EndpointPolicy, EndpointRefused
from push.messages import PushMessage
from push.metrics import OUTBOX_DEPTH, PUSHES_FAILED, PUSHES_SENT
from push.outbox import PushOutbox
from push.subscriptions import SubscriptionStore
from push.vapid import VapidSigner

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 425, 429})
WARN_EVERY_S = 30.0


@dataclass(frozen=True)
class SenderLimits:
    concurrency: int = 64
    per_origin: int = 32
    timeout_s: float = 5.0
    connect_timeout_s: float = 3.0
    max_response_bytes: int = 4096
    base_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    interval_s: float = 0.1
    batch: int = 500
    lease_s: float = 15.0
    depth_every_s: float = 1.0


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: no HTTP answer (network error, timeout)
    why: str = ""
    retry_after_s: float | None = None

    @property
    def label(self) -> str:
        return str(self.status) if self.status is not None else (self.why or "network")


class PushSender:
    def __init__(
        self,
        outbox: PushOutbox,
        subscriptions: SubscriptionStore,
        policy: EndpointPolicy,
        signer: VapidSigner,
        limits: SenderLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.subscriptions = subscriptions
        self.policy = policy
        self.signer = signer
        self.limits = limits or SenderLimits()
        self._clock = clock
        self._holder = uuid.uuid4().hex
        self._pool = TaskPool("push-send", self.limits.concurrency)
        self._inflight: set[str] = set()  # stream ids being sent
        self._finished: set[str] = set()  # stream ids handled since this pass read the stream
        self._busy: set[str] = set()  # subscription ids being sent to
        self._origins: Tally[str] = Tally()
        self._session: aiohttp.ClientSession | None = None
        self._depth_at = 0.0
        self._warned_at = -WARN_EVERY_S
        self._loop = Periodic("push-sender", self._step, 0.0, delay_first=False)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._pool.stop(grace_s=self.limits.timeout_s)
        if self._session is not None:
            await self._session.close()
            self._session = None
        try:
            await self.outbox.drop_lease(self._holder)
        except Exception:
            log.warning("could not drop the push outbox lease")

    async def _step(self) -> None:
        try:
            await self.deliver_due()
        except Exception as exc:  # Redis down or failing over: say so now and then, not 10/s
            now = time.monotonic()
            if now - self._warned_at > WARN_EVERY_S:
                self._warned_at = now
                log.warning("push outbox unavailable, retrying: %r", exc)
        finally:
            await self.outbox.wait(self.limits.interval_s)

    async def deliver_due(self) -> int:
        """One pass: how many sends it started."""
        now = self._clock()
        pending, delayed = await self.outbox.depth()
        if now - self._depth_at >= self.limits.depth_every_s:
            self._depth_at = now
            OUTBOX_DEPTH.labels("pending").set(pending)
            OUTBOX_DEPTH.labels("delayed").set(delayed)
        if not pending and not delayed and not self._inflight:
            return 0  # nothing to send: no lease taken, nothing written
        if not await self.outbox.take_lease(self._holder, self.limits.lease_s):
            return 0
        await self.outbox.promote_due(now)
        if not self._pool.free:
            return 0
        started = 0
        self._finished.clear()  # a send that ends while the stream is read is not sent again
        for entry in await self.outbox.head(self.limits.batch):
            if not self._pool.free:
                break
            if entry.stream_id in self._inflight or entry.stream_id in self._finished:
                continue
            try:
                message = PushMessage.from_json(entry.body)
            except (ValueError, TypeError) as exc:
                log.error("push outbox entry %s unreadable, dropped: %s", entry.stream_id, exc)
                await self.outbox.done(entry)
                continue
            origin = _origin_of(message)
            if message.subscription_id in self._busy:
                continue
            if self._origins[origin] >= self.limits.per_origin:
                continue
            self._inflight.add(entry.stream_id)
            self._busy.add(message.subscription_id)
            self._origins[origin] += 1
            self._pool.spawn(message.outbox_id, functools.partial(self._send, entry, message))
            started += 1
        return started

    async def join(self) -> None:
        """Wait for the sends started so far (tests)."""
        await self._pool.join()

    async def _send(self, entry: OutboxEntry, message: PushMessage) -> None:
        origin = _origin_of(message)
        try:
            try:
                outcome = await self._deliver(message, origin)
            except Exception as exc:  # never a tight loop on one message: back off like a 5xx
                log.exception("push %s could not be sent", message.id)
                outcome = Outcome(None, f"error: {type(exc).__name__}")
            await self._handle(entry, message, outcome)
        finally:
            self._finished.add(entry.stream_id)
            self._inflight.discard(entry.stream_id)
            self._busy.discard(message.subscription_id)
            self._origins[origin] -= 1
            if self._origins[origin] <= 0:
                del self._origins[origin]
            self.outbox.wake()  # its subscription's next message may go now

    async def _deliver(self, message: PushMessage, origin: str) -> Outcome:
        now = self._clock()
        if now >= message.expires_at:
            return Outcome(None, "expired")
        sub = await self.subscriptions.get(message.family_id, message.subscription_id)
        if sub is None:
            return Outcome(None, "gone")
        try:
            url = self.policy.check(sub.endpoint)
        except EndpointRefused as exc:
            log.warning("push subscription %s refused at send time: %s", sub.id, exc)
            await self.subscriptions.remove(sub.family_id, sub.id)
            return Outcome(None, "refused")
        body = WebPusher(sub.info()).encode(message.data(), "aes128gcm")["body"]
        headers = {
            "TTL": str(message.ttl_s(now)),
            "Urgency": message.urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self.signer.authorization(_audience(url)),
        }
        if message.topic:
            headers["Topic"] = message.topic
        return await self._post(url, body, headers)

    async def _post(self, url: URL, body: bytes, headers: dict[str, str]) -> Outcome:
        session = self._client()
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(self.limits.max_response_bytes)  # the rest: dropped
                return Outcome(
                    resp.status, retry_after_s=_retry_after(resp.headers.get("Retry-After"))
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome(None, f"network: {type(exc).__name__}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            limits = self.limits
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=limits.timeout_s,
                    connect=limits.connect_timeout_s,
                    sock_read=limits.timeout_s,
                ),
                connector=aiohttp.TCPConnector(limit=limits.concurrency, ttl_dns_cache=60),
                trust_env=False,  # never through a proxy the environment names
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _handle(self, entry: OutboxEntry, message: PushMessage, outcome: Outcome) -> None:
        status = outcome.status
        if status is not None and 200 <= status < 300:
            PUSHES_SENT.labels(message.type).inc()
            await self.outbox.done(entry)
            return
        label = outcome.label.split(":", 1)[0]
        PUSHES_FAILED.labels(label).inc()
        if status in (404, 410):
            log.info("push subscription %s is gone (%d): removed", message.subscription_id, status)
            await self.subscriptions.remove(message.family_id, message.subscription_id)
            await self.outbox.done(entry)
            return
        if outcome.why in ("expired", "gone", "refused"):
            await self.outbox.done(entry)
            return
        if status is None or status in RETRYABLE or status >= 500:
            delay = self._backoff(message.attempt, outcome.retry_after_s)
            due = self._clock() + delay
            if due < message.expires_at:
                await self.outbox.retry_at(entry, message.retried(), due)
                return
            log.warning("push %s not delivered within its TTL (%s)", message.id, outcome.label)
        else:
            log.warning("push %s refused by its push service: HTTP %s", message.id, status)
        await self.outbox.done(entry)

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        limits = self.limits
        delay = min(limits.max_backoff_s, limits.base_backoff_s * 2.0 ** min(attempt, 20))
        delay *= random.uniform(0.75, 1.0)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, limits.max_backoff_s * 10))
        return delay


def _origin_of(message: PushMessage) -> str:
    return str(message.extra.get("origin") or "")


def _audience(url: URL) -> str:
    """The VAPID ``aud``: the endpoint's origin (scheme://host[:port])."""
    return str(url.origin())


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, float(str(raw).strip()))
    except ValueError:
        return None  # an HTTP date: the backoff decides
