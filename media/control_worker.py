"""Worker side of the control channel (keys and messages: :mod:`media.control`).

:class:`ControlServer` serves requests concurrently, :class:`EventPublisher` writes events in
order without blocking the caller, and :class:`WorkerRegistry` keeps the worker's registry
entries (heartbeat, its calls, deregistration).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from core.tasks import TaskPool, cancel_task
from media.control import (
    ALIVE_TTL_MS,
    EVENTS_MAXLEN,
    INTERNAL,
    RECORDING_REPORT_TTL_S,
    REPLY_TTL_S,
    ControlError,
    ControlTimeout,
    Request,
    WorkerEvent,
)
from media.redis_keys import (
    ALIVE,
    CALL_WORKER,
    CONTROL,
    EVENTS,
    LAST_BEATS,
    RECORDING_REPORT,
    REPLY,
    WORKER_CALLS,
    WORKERS,
)

log = logging.getLogger(__name__)

RequestHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    """BLPOPs ``sfu:ctl:{worker_id}`` and serves each request in its own task."""

    def __init__(
        self, redis: Redis, worker_id: str, handler: RequestHandler, *, poll_s: float = 1.0
    ) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self._handler = handler
        self._poll_s = poll_s
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._inflight = TaskPool(f"sfu-ctl-{worker_id}")

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._inflight = TaskPool(f"sfu-ctl-{self.worker_id}")
            self._task = asyncio.create_task(self._run(), name=f"sfu-ctl-{self.worker_id}")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking requests; let in-flight ones finish for up to ``grace_s``."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await cancel_task(task)
        await self._inflight.stop(grace_s)

    async def _run(self) -> None:
        key = CONTROL(self.worker_id)
        while not self._stopping:
            try:
                popped = await self.redis.blpop([key], timeout=self._poll_s)
            except (RedisError, OSError):
                log.exception("sfu control: redis error; retrying")
                await asyncio.sleep(1.0)
                continue
            if popped is not None:
                raw = popped[1]
                self._inflight.spawn("request", functools.partial(self._serve, raw))

    async def _serve(self, raw: bytes | str) -> None:
        try:
            request = Request.model_validate_json(raw)
        except ValidationError:
            log.error("sfu control: dropping malformed request %r", raw[:200])
            return
        if request.expires_at < time.time():
            log.warning("sfu control: skipping expired %s %s", request.op, request.request_id)
            return
        reply: dict[str, Any]
        try:
            # Past the caller's deadline the work is abandoned (cancelled: a half-made peer
            # connection is closed), never finished for nobody.
            work = self._handler(request.op, request.args)
            result = await asyncio.wait_for(work, max(0.0, request.expires_at - time.time()))
            reply = {"result": result}
        except TimeoutError:
            log.warning("sfu control: %s %s passed its deadline", request.op, request.request_id)
            reply = {"error": ControlTimeout(f"{request.op} took too long").to_dict()}
        except ControlError as exc:
            reply = {"error": exc.to_dict()}
        except Exception as exc:
            log.exception("sfu control: %s failed", request.op)
            reply = {"error": {"code": INTERNAL, "message": f"{type(exc).__name__}: {exc}"}}
        key = REPLY(request.request_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, json.dumps(reply))
                pipe.expire(key, REPLY_TTL_S)
                await pipe.execute()
        except (RedisError, OSError):
            log.exception("sfu control: cannot reply to %s %s", request.op, request.request_id)


class EventPublisher:
    """XADDs worker events in emission order from one task; ``emit`` never blocks."""

    def __init__(self, redis: Redis, *, maxlen: int = EVENTS_MAXLEN) -> None:
        self.redis = redis
        self._maxlen = maxlen
        self._queue: asyncio.Queue[WorkerEvent | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sfu-events-out")

    def emit(self, event: WorkerEvent) -> None:
        self._queue.put_nowait(event)

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Write what is queued (bounded by ``flush_timeout_s``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), flush_timeout_s)
        await cancel_task(task)

    async def _run(self) -> None:
        while (event := await self._queue.get()) is not None:
            for attempt in range(5):
                try:
                    fields: dict[FieldT, EncodableT] = {k: v for k, v in event.to_fields().items()}
                    await self.redis.xadd(EVENTS(), fields, maxlen=self._maxlen, approximate=True)
                    break
                except (RedisError, OSError):
                    log.exception("sfu events: cannot publish %s (attempt %d)", event, attempt + 1)
                    await asyncio.sleep(0.2 * 2**attempt)


class WorkerRegistry:
    """The worker's entries in the registry: its calls and clean deregistration (the
    heartbeat is :class:`media.liveness.HeartbeatThread`)."""

    def __init__(self, redis: Redis, worker_id: str, *, alive_ttl_ms: int = ALIVE_TTL_MS) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.alive_ttl_ms = alive_ttl_ms

    async def add_call(self, call_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(WORKER_CALLS(self.worker_id), call_id)
            pipe.set(CALL_WORKER(call_id), self.worker_id)
            await pipe.execute()

    async def remove_call(
        self, call_id: str, recording_problems: tuple[str, ...] | None = None
    ) -> None:
        """Forget the call; for a recorded call, report that its file is closed and what
        could not be recorded (:data:`media.redis_keys.RECORDING_REPORT`)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(WORKER_CALLS(self.worker_id), call_id)
            pipe.delete(CALL_WORKER(call_id))
            if recording_problems is not None:
                report = json.dumps({"problems": list(recording_problems)})
                pipe.set(RECORDING_REPORT(call_id), report, ex=RECORDING_REPORT_TTL_S)
            await pipe.execute()

    async def deregister(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(WORKERS(), self.worker_id)
            pipe.hdel(LAST_BEATS(), self.worker_id)
            pipe.delete(ALIVE(self.worker_id), WORKER_CALLS(self.worker_id))
            await pipe.execute()
