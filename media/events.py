"""The signaling side of ``sfu:events``: :class:`EventConsumer`, one per signaling node, in
consumer group ``signaling`` (so each worker event is handled by one node).

- **Concurrent, bounded, in order per call**: up to ``concurrency`` events are handled at once;
  events of one call run one after the other in stream order, different calls in parallel. An
  event is acked after its handler returns.
- **Stable name**: the consumer is named after its node (a name that survives a restart), so
  a restarted node first takes back its own pending entries.
- **Retries**: an event whose handler failed stays pending; once idle ``claim_idle_ms`` it is
  claimed again (``XPENDING`` + ``XCLAIM``) by whichever node looks first, this one included.
  Events still being handled are kept fresh (their idle time reset) so no other node takes them.
- **Poison**: an event delivered ``max_deliveries`` times whose handler still fails (or one
  delivered more often, e.g. it crashed its node each time) is logged at ERROR, copied to the
  capped stream ``sfu:events:dead`` and acked: never retried for ever.
- **Dead consumers**: a consumer idle ``dead_consumer_ms`` with nothing pending (a node gone for
  good, or renamed) is removed (``XGROUP DELCONSUMER``, checked and done in one script) by
  whichever node notices.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT, StreamIdT

from core.lua import script
from core.tasks import TaskPool, cancel_task
from media.control import EVENTS_GROUP, WorkerEvent
from media.redis_keys import EVENTS, EVENTS_DEAD

log = logging.getLogger(__name__)

DEAD_SUFFIX: Final = ":dead"  # another stream's poison goes to <stream>:dead
DEAD_MAXLEN: Final = 1000
MAX_DELIVERIES: Final = 5
DEFAULT_CONCURRENCY: Final = 32

EventHandler = Callable[[WorkerEvent], Awaitable[object]]
StreamEntry = tuple[bytes, dict[bytes, bytes]]

# Drops other consumers idle and with nothing pending, checked and done in one step.
_REMOVE_DEAD: Final = script("media", "events_remove_dead.lua")


class EventConsumer:
    """Reads ``sfu:events`` in a consumer group and hands each event to ``handler``."""

    def __init__(
        self,
        redis: Redis,
        consumer: str,
        handler: EventHandler,
        *,
        group: str = EVENTS_GROUP,
        stream: str = EVENTS(),
        block_ms: int = 1000,
        batch: int = 100,
        claim_idle_ms: int = 30_000,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_deliveries: int = MAX_DELIVERIES,
        dead_consumer_ms: int = 600_000,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.group = group
        self.stream = stream
        self.dead_stream = EVENTS_DEAD() if stream == EVENTS() else stream + DEAD_SUFFIX
        self._handler = handler
        self._block_ms = block_ms
        self._batch = batch
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._dead_consumer_ms = dead_consumer_ms
        self._stop_grace = stop_grace_s
        self._remove_dead = redis.register_script(_REMOVE_DEAD)
        self._pool = TaskPool(f"sfu-events-{consumer}", concurrency)
        self._inflight: dict[bytes, asyncio.Task[None]] = {}  # entry id -> its handling
        self._tails: dict[str, asyncio.Task[None]] = {}  # call id -> its latest event's task
        self._last_maintenance = time.monotonic()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            await self._ensure_group()
            self._stopping = False
            self._pool = TaskPool(self._pool.name, self._pool.limit)
            self._task = asyncio.create_task(self._run(), name=f"sfu-events-{self.consumer}")

    async def stop(self) -> None:
        """Read no more; let events being handled finish (bounded), then cancel them (they
        stay pending: this node takes them back when it restarts, any node after a while)."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await cancel_task(task)
        await self._pool.stop(self._stop_grace)

    async def join(self) -> None:
        """Wait until the events taken so far are handled (tests)."""
        await self._pool.join()

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _run(self) -> None:
        own_from: str | None = "-"  # first, our own pending entries (a restarted node)
        while not self._stopping:
            try:
                await self._pool.wait_for_slot()
                if own_from is not None:
                    own_from = await self._claim_pending(own_from, mine=True)
                elif time.monotonic() - self._last_maintenance > self._claim_idle_ms / 2000:
                    self._last_maintenance = time.monotonic()
                    await self._maintain()
                else:
                    for entry_id, fields in await self._read():
                        await self._dispatch(entry_id, fields, deliveries=1)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    await self._ensure_group()  # the stream was deleted (e.g. FLUSHALL)
                    continue
                log.exception("sfu events: redis error; retrying")
                await asyncio.sleep(1.0)

    async def _read(self) -> list[StreamEntry]:
        streams: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=min(self._batch, self._pool.free),
            block=self._block_ms,
        )
        return list(streams[0][1]) if streams else []

    async def _maintain(self) -> None:
        await self._keep_inflight()
        await self._claim_pending("-", mine=False)
        removed = await self._remove_dead(
            keys=[self.stream], args=[self.group, self.consumer, self._dead_consumer_ms]
        )
        for name in removed:
            log.info("sfu events: removed dead consumer %s", name.decode(errors="replace"))

    async def _keep_inflight(self) -> None:
        """Reset the idle time of entries we are handling, so no other node claims them."""
        if self._inflight:
            ids: list[StreamIdT] = list(self._inflight)
            await self.redis.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)

    async def _claim_pending(self, start: str, *, mine: bool) -> str | None:
        """Claim one page of pending entries (ours, or anyone's idle ``claim_idle_ms``) from
        ``start`` and dispatch them; returns where the next page starts, None at the end."""
        free = min(self._batch, self._pool.free)
        idle = None if mine else self._claim_idle_ms
        raw: Any = await self.redis.xpending_range(
            self.stream,
            self.group,
            start,
            "+",
            free,
            consumername=self.consumer if mine else None,
            idle=idle,
        )
        pending: list[tuple[bytes, int]] = [
            (p["message_id"], int(p["times_delivered"])) for p in raw
        ]
        if not pending:
            return None
        deliveries = {i: n + 1 for i, n in pending if i not in self._inflight}
        if deliveries:
            ids: list[StreamIdT] = list(deliveries)
            claimed: Any = await self.redis.xclaim(
                self.stream, self.group, self.consumer, idle or 0, ids
            )
            got: set[bytes] = set()
            for entry_id, fields in claimed:
                if entry_id is not None:  # None: trimmed from the stream meanwhile
                    got.add(entry_id)
                    await self._dispatch(entry_id, fields, deliveries[entry_id])
            for entry_id in deliveries.keys() - got:
                if not await self.redis.xrange(self.stream, entry_id, entry_id):
                    await self._ack(entry_id)  # gone from the stream: nothing to handle
        return "(" + pending[-1][0].decode()

    async def _dispatch(
        self, entry_id: bytes, fields: dict[bytes, bytes] | None, deliveries: int
    ) -> None:
        if entry_id in self._inflight:
            return
        try:
            event = WorkerEvent.from_fields(fields or {})
        except (ValidationError, UnicodeDecodeError):
            log.error("sfu events: dropping malformed entry %s: %r", entry_id, fields)
            await self._ack(entry_id)
            return
        if deliveries > self._max_deliveries:
            log.error("sfu events: %s delivered %d times; dead-lettered", event, deliveries)
            await self._dead_letter(entry_id, fields or {}, deliveries)
            return
        await self._pool.wait_for_slot()
        after = self._tails.get(event.call_id)
        work = functools.partial(self._process, entry_id, event, fields or {}, deliveries, after)
        task = self._pool.spawn(f"{event.type}:{event.call_id}", work)
        self._inflight[entry_id] = task
        self._tails[event.call_id] = task
        task.add_done_callback(functools.partial(self._forget, entry_id, event.call_id))

    def _forget(self, entry_id: bytes, call_id: str, task: asyncio.Task[None]) -> None:
        self._inflight.pop(entry_id, None)
        if self._tails.get(call_id) is task:
            del self._tails[call_id]

    async def _process(
        self,
        entry_id: bytes,
        event: WorkerEvent,
        fields: dict[bytes, bytes],
        deliveries: int,
        after: asyncio.Task[None] | None,
    ) -> None:
        if after is not None:
            await asyncio.wait([after])  # the same call's earlier event first, however it ends
        try:
            await self._handler(event)
        except Exception:
            if deliveries >= self._max_deliveries:
                log.error(
                    "sfu events: handler failed on %s (delivery %d); dead-lettered",
                    event,
                    deliveries,
                    exc_info=True,
                )
                await self._dead_letter(entry_id, fields, deliveries)
            else:
                log.exception("sfu events: handler failed on %s; left pending", event)
            return
        await self._ack(entry_id)

    async def _ack(self, entry_id: bytes) -> None:
        try:
            await self.redis.xack(self.stream, self.group, entry_id)
        except RedisError:
            log.warning("sfu events: could not ack %s; it will be handled again", entry_id)

    async def _dead_letter(
        self, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int
    ) -> None:
        dead: dict[FieldT, EncodableT] = {}
        for key, value in fields.items():
            dead[key] = value
        dead.update({"entry_id": entry_id, "deliveries": deliveries, "consumer": self.consumer})
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self.dead_stream, dead, maxlen=DEAD_MAXLEN, approximate=True)
                pipe.xack(self.stream, self.group, entry_id)
                await pipe.execute()
        except RedisError:
            log.warning("sfu events: could not dead-letter %s; it will be tried again", entry_id)
