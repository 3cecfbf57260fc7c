"""The end-of-call chain: settle, tell the family its charge, tear down the media and seal the
recording (``settle`` and ``teardown``: :class:`~signaling.calls.CallService`'s steps).

It runs after the call's ``ENDED`` transition, off the path of whoever ended it (a hang-up ack, a
``time_limit`` timer, a worker event), so one slow call (a hung SFU worker, a large recording to
hash) never holds up another call's warning or hang-up. At most ``concurrency`` calls finish at
once per node, which also bounds the Redis connections their worker requests hold.

Exactly once, whatever retries, crashes or second nodes:

- the ``ENDED`` transition arms a durable ``settle`` timer; if this node dies or settlement
  fails, the timer fires on any node and finishes the call again (settlement is idempotent in
  the ledger);
- a run holds the lock ``finish:{call_id}`` (``SET NX PX``, renewed while it runs), so the timer
  never starts a second run while the first is still going on a live node;
- the family's ``call.ended`` goes out under a once-flag on the call record, and a finished call
  is flagged so a late timer does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from redis.exceptions import RedisError

from core.lua import script
from core.tasks import TaskPool
from signaling.call_events import CallHook, Emitter, Settler, ended_payload, family_room
from signaling.call_machine import SETTLE
from signaling.call_state import CallRecord, CallState, CallStore
from signaling.redis_keys import FINISH_LOCK
from signaling.timers import DurableTimers

log = logging.getLogger(__name__)

FAMILY_ENDED = "family_ended"  # once-flag: the family heard its charge
FINISHED = "finished"  # once-flag: the whole chain completed
FINISH_LOCK_MS = 15_000
DEFAULT_CONCURRENCY = 16  # well below the Redis pool (64): worker requests hold a connection

_RENEW_LOCK = script("signaling", "lock_renew.lua")
_RELEASE_LOCK = script("signaling", "lock_release.lua")


def finish_lock_key(call_id: str) -> str:
    return FINISH_LOCK(call_id)


class CallFinisher:
    def __init__(
        self,
        store: CallStore,
        timers: DurableTimers,
        emit: Emitter,
        *,
        settle: Settler,
        teardown: CallHook,
        retry_s: float,
        clock: Callable[[], float] = time.time,
        concurrency: int = DEFAULT_CONCURRENCY,
        lock_ms: int = FINISH_LOCK_MS,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.store = store
        self.timers = timers
        self.emit = emit
        self._settle = settle
        self._teardown = teardown
        self._clock = clock
        self.retry_s = retry_s
        self._lock_ms = lock_ms
        self._stop_grace = stop_grace_s
        self._pool = TaskPool("call-finish", concurrency)
        self._renew = store.redis.register_script(_RENEW_LOCK)
        self._release = store.redis.register_script(_RELEASE_LOCK)
        timers.on(SETTLE, self.on_settle_timer)

    def finish_later(self, record: CallRecord) -> asyncio.Task[None] | None:
        """Finish an ended call in the background (its ``settle`` timer covers a crash)."""
        try:
            return self._pool.spawn(record.call_id, functools.partial(self._finish, record))
        except RuntimeError:
            log.info("stopping: call %s is finished by its settle timer", record.call_id)
            return None

    @property
    def running(self) -> int:
        """Background runs on this node now (waiting for a slot included)."""
        return len(self._pool)

    async def join(self) -> None:
        """Wait for every background run started so far (tests)."""
        await self._pool.join()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for the runs in progress, e.g. so that a node shutting down tells the
        families their charge before it disconnects them."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pool.join(), timeout_s)

    async def stop(self) -> None:
        await self._pool.stop(self._stop_grace)

    async def on_settle_timer(self, call_id: str) -> None:
        """The ``settle`` timer: the chain was not completed (node died, a step failed)."""
        record = await self.store.get(call_id)
        if record is None or record.state != CallState.ENDED:
            return
        if await self.store.claimed(call_id, FINISHED):
            return
        log.warning("call %s: finishing a settlement left undone", call_id)
        # Re-armed first: if this run dies too, the timer fires again (and the timer set does
        # not drop it when this handler returns); a completed run cancels it.
        await self.timers.schedule(SETTLE, call_id, self._clock() + self.retry_s)
        self.finish_later(record)

    async def finish(self, ended: CallRecord) -> bool:
        """The chain, once; False if another run holds the call now (that one finishes it)."""
        call_id = ended.call_id
        async with self._lock(call_id) as mine:
            if not mine:
                log.info("call %s is being finished by another run", call_id)
                return False
            if await self.store.claimed(call_id, FINISHED):
                return True
            try:
                settlement = await self._settle(ended)
            except Exception:
                await self._run_teardown(ended)  # the media goes even so
                raise
            if await self.store.claim_once(call_id, FAMILY_ENDED):
                payload = {
                    **ended_payload(ended),
                    "charged_cents": settlement.charged_cents,
                    "balance_cents": settlement.balance_cents,
                    "agency_seconds": settlement.agency_seconds,  # v1.2 pricing plans
                }
                await self.emit("call.ended", payload, family_room(ended.family_id))
            await self._run_teardown(ended)
            await self.store.claim_once(call_id, FINISHED)
            await self.timers.cancel(SETTLE, call_id)
            return True

    async def _run_teardown(self, ended: CallRecord) -> None:
        try:
            await self._teardown(ended)
        except Exception:
            log.exception("tearing down call %s failed", ended.call_id)

    async def _finish(self, ended: CallRecord) -> None:
        try:
            await self.finish(ended)
        except Exception:
            log.exception("finishing call %s failed; its settle timer retries", ended.call_id)

    @contextlib.asynccontextmanager
    async def _lock(self, call_id: str) -> AsyncIterator[bool]:
        key, token = finish_lock_key(call_id), uuid.uuid4().hex
        if not await self.store.redis.set(key, token, nx=True, px=self._lock_ms):
            yield False
            return
        keeper = asyncio.create_task(self._keep(key, token), name=f"finish-lock:{call_id}")
        try:
            yield True
        finally:
            keeper.cancel()
            await asyncio.wait([keeper])
            try:
                await self._release(keys=[key], args=[token])
            except RedisError:
                log.warning("call %s: finish lock not released; it expires", call_id)

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lock_ms / 3000)
            try:
                if not await self._renew(keys=[key], args=[token, self._lock_ms]):
                    log.warning("lost the lock %s while finishing the call", key)
                    return
            except RedisError:
                log.warning("could not renew the lock %s; retrying", key)
