"""The durable push outbox: the project's Redis-stream outbox (:class:`billing_hooks.outbox.Outbox`:
deduplicated appends, a lease so one node sends, deletion only once handled) holding one
:class:`~push.messages.PushMessage` per subscription, plus a sorted set of messages waiting to
be retried.

A message is appended under its stable id (a repeated event is dropped). A retry takes it off
the stream into ``push:outbox:delayed`` (scored by when it is due) and :meth:`promote_due` puts
it back under ``id#attempt``, so the stream holds only messages due now and a push service
that keeps failing never holds up the others. A crash between two steps sends a message twice
at worst, never loses it. :meth:`wake` lets the sender of this node start at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from billing_hooks.outbox import Outbox, OutboxEntry
from push.messages import PushMessage
from push.redis_keys import OUTBOX, OUTBOX_DELAYED

STREAM = OUTBOX()
DEDUPE_TTL_S = 8 * 86400  # past the longest TTL (a week)


class PushOutbox:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.outbox = Outbox(redis, STREAM, dedupe_ttl_s=DEDUPE_TTL_S)
        self.delayed = OUTBOX_DELAYED()
        self._wake = asyncio.Event()

    async def append(self, message: PushMessage) -> bool:
        """Keep ``message`` (False: this id was appended before, nothing written)."""
        added = await self.outbox.append(message.outbox_id, message.to_json())
        if added:
            self._wake.set()
        return added

    async def head(self, limit: int) -> list[OutboxEntry]:
        return await self.outbox.head(limit)

    async def done(self, entry: OutboxEntry) -> None:
        await self.outbox.delivered(entry)

    async def retry_at(self, entry: OutboxEntry, message: PushMessage, due: float) -> None:
        """Take ``entry`` off the stream and keep ``message`` (its next attempt) until ``due``."""
        await self.redis.zadd(self.delayed, {message.to_json(): due})
        await self.outbox.delivered(entry)

    async def promote_due(self, now: float, limit: int = 200) -> int:
        """Put the retries due by ``now`` back on the stream; how many."""
        due = await self.redis.zrangebyscore(self.delayed, "-inf", now, start=0, num=limit)
        for raw in due:
            member = raw if isinstance(raw, bytes | str) else b""
            await self.append(PushMessage.from_json(member))
            await self.redis.zrem(self.delayed, member)
        return len(due)

    async def depth(self) -> tuple[int, int]:
        """(messages due now, messages waiting for a retry), deployment-wide."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.outbox.stream)
            pipe.zcard(self.delayed)
            pending, delayed = await pipe.execute()
        return int(pending), int(delayed)

    async def take_lease(self, holder: str, ttl_s: float) -> bool:
        return await self.outbox.take_lease(holder, ttl_s)

    async def drop_lease(self, holder: str) -> None:
        await self.outbox.drop_lease(holder)

    def wake(self) -> None:
        self._wake.set()

    async def wait(self, timeout_s: float) -> None:
        """Until something was appended on this node, or ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        self._wake.clear()
