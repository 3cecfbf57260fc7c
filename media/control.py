"""Control channel between the signaling tier and SFU workers, over Redis.

Keys (``{w}`` = worker id; built by the constants of :mod:`media.redis_keys`):

* ``sfu:workers`` (set of worker ids) and ``sfu:alive:{w}`` (JSON :class:`WorkerStatus`,
  ``PX 3000``, refreshed every second): the worker registry; ``sfu:last_beat`` (hash: worker
  id -> time of its last heartbeat, kept until the worker is claimed or deregisters). A worker
  still in the set whose alive key expired died without cleaning up
  (:meth:`SfuControl.dead_workers`).
* ``sfu:calls:{w}`` (set of call ids on that worker) and ``sfu:call:{call_id}`` (its worker id),
  written by the worker when it opens / closes a call; ``sfu:recording:{call_id}`` (JSON
  ``{"problems": [...]}``, 7 days) when it has closed the call's recording file.
* ``sfu:ctl:{w}`` (list): requests, RPUSHed as JSON :class:`Request`, BLPOPed by the worker.
* ``sfu:reply:{request_id}`` (list, EXPIRE 30): ``{"result": {...}}`` or
  ``{"error": {"code", "message"}}``, BLPOPed by the caller.
* ``sfu:events`` (stream, MAXLEN ~ 10000): :class:`WorkerEvent` fields; signaling nodes read it
  in consumer group ``signaling`` (:class:`~media.events.EventConsumer`), so each event is
  handled once.
  A ``closed`` event whose call is still live means the worker dropped it on its own
  (``reason`` ``shutdown`` / ``fenced``): signaling should end that call.

This module holds the messages, keys and the signaling side's requests (:class:`SfuControl`).
The signaling side's event consumer (:class:`~media.events.EventConsumer`; poison events go to
``sfu:events:dead``) is in :mod:`media.events`, the worker-side transport (``ControlServer``,
``EventPublisher``, ``WorkerRegistry``) in :mod:`media.control_worker`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from core.domain import Party as Party
from core.lua import script
from core.redis_text import text
from media.admission import DEFAULT_MAX_CALLS, MEASURED_CALL_COST, has_room
from media.redis_keys import (
    ALIVE,
    CALL_WORKER,
    CONTROL,
    LAST_BEATS,
    RECORDING_REPORT,
    REPLY,
    WORKER_CALLS,
    WORKERS,
)

if TYPE_CHECKING:
    from media.events import EventConsumer, EventHandler

log = logging.getLogger(__name__)

_CLAIM: Final = script("media", "worker_claim.lua")  # a dead worker's calls, claimed once
EVENTS_GROUP: Final = "signaling"
EVENTS_MAXLEN: Final = 10_000
REPLY_TTL_S: Final = 30
RECORDING_REPORT_TTL_S: Final = 7 * 86400
HEARTBEAT_S: Final = 1.0
ALIVE_TTL_MS: Final = 3000
DEFAULT_MEDIA_TIMEOUT_S: Final = 15.0
MAX_SDP_BYTES: Final = 64 * 1024

# Error codes carried in replies (and raised by SfuControl as ControlError.code).
INVALID_SDP: Final = "invalid_sdp"
NOT_FOUND: Final = "not_found"
INVALID_STATE: Final = "invalid_state"
PRIVILEGED: Final = "privileged"
INVALID_REQUEST: Final = "invalid_request"
INTERNAL: Final = "internal"
TIMEOUT: Final = "timeout"
NO_WORKERS: Final = "no_workers"
CAPACITY: Final = "capacity"
WORKER_UNAVAILABLE: Final = "worker_unavailable"
RECORDING_UNAVAILABLE: Final = "recording_unavailable"  # the call's file cannot be created

PARTIES: Final[tuple[Party, Party]] = ("tablet", "family")
EventType = Literal["connected", "media_lost", "closed", "quality"]
#: Why a worker closed a call: asked to (``close_call``), its own shutdown (SIGTERM), or it
#: found itself declared dead (``fenced``; signaling already ended the call).
CloseReason = Literal["close_call", "shutdown", "fenced"]


class ControlError(Exception):
    """A request failed: ``code`` is one of the error codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ControlTimeout(ControlError):
    def __init__(self, message: str) -> None:
        super().__init__(TIMEOUT, message)


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Id = Annotated[str, Field(min_length=1, max_length=128)]


class OpenCall(_Msg):
    call_id: Id
    privileged: bool = False
    media_timeout_s: float = Field(DEFAULT_MEDIA_TIMEOUT_S, gt=0, le=3600)


class Offer(_Msg):
    call_id: Id
    party: Party
    sdp: str


class Watch(_Msg):
    call_id: Id
    watcher_id: Id
    sdp: str


class Unwatch(_Msg):
    call_id: Id
    watcher_id: Id


class CloseCall(_Msg):
    call_id: Id


class Privatize(_Msg):
    """The call turned privileged after its room opened: stop and delete its recording, drop
    every monitor, refuse monitors from now on (idempotent)."""

    call_id: Id


class Stats(_Msg):
    pass


OPS: Final[dict[str, type[_Msg]]] = {
    "open_call": OpenCall,
    "offer": Offer,
    "watch": Watch,
    "unwatch": Unwatch,
    "close_call": CloseCall,
    "privatize": Privatize,
    "stats": Stats,
}


class Request(_Msg):
    request_id: Id
    op: str
    args: dict[str, Any]
    expires_at: float  # Unix time; the caller has given up after this


class WorkerStatus(BaseModel):
    calls: int
    load: float  # process CPU seconds per wall second, smoothed over a few seconds
    pid: int
    started_at: float
    loop_lag_ms: float = 0.0  # worst event-loop lag since the last heartbeat
    loop_lag_avg_ms: float = 0.0  # that, smoothed over a few seconds
    max_calls: int = DEFAULT_MAX_CALLS  # admission limit of this worker
    # CPU share one call costs it (learned, else the benchmark's; older workers omit it)
    call_cost: float = MEASURED_CALL_COST

    def has_room(self, calls: int) -> bool:
        """Admission (:func:`media.admission.has_room`): below its call limit, its event loop
        on time (smoothed: a moment's hiccup refuses nothing), its core not full now and not
        full with ``calls`` (counted now) and one more at its cost per call."""
        return has_room(
            calls,
            max_calls=self.max_calls,
            load=self.load,
            loop_lag_avg_ms=self.loop_lag_avg_ms,
            call_cost=self.call_cost,
        )


class WorkerEvent(_Msg):
    model_config = ConfigDict(extra="ignore", frozen=True)  # newer workers may add fields

    type: EventType
    call_id: str
    worker_id: str
    party: Party | None = None  # media_lost only
    reason: CloseReason | None = None  # closed only
    quality: str | None = None  # quality only: JSON {party: media.quality.PartyQuality.as_dict()}
    at: float = Field(default_factory=time.time)

    def to_fields(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump(exclude_none=True).items()}

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> WorkerEvent:
        return cls.model_validate({k.decode(): v.decode() for k, v in fields.items()})


def parse_args(op: str, args: dict[str, Any]) -> _Msg:
    """Validate a request's args for ``op``; raises ControlError(invalid_request)."""
    model = OPS.get(op)
    if model is None:
        raise ControlError(INVALID_REQUEST, f"unknown op {op!r}")
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise ControlError(INVALID_REQUEST, f"{op}: {exc.errors()[0]['msg']}") from exc


class SfuControl:
    """What the signaling tier calls: placement, requests to workers, dead-worker detection."""

    def __init__(self, redis: Redis, *, timeout_s: float = 10.0) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self._claim = redis.register_script(_CLAIM)

    async def live_workers(self) -> dict[str, WorkerStatus]:
        ids = sorted(text(w) for w in await self.redis.smembers(WORKERS()))
        if not ids:
            return {}
        raw = await self.redis.mget([ALIVE(w) for w in ids])
        return {w: WorkerStatus.model_validate_json(v) for w, v in zip(ids, raw, strict=True) if v}

    async def pick_worker(self) -> str:
        """The live worker with room (admission, see :meth:`WorkerStatus.has_room`) and the
        fewest calls (then the lowest load); ``capacity`` if none has room.

        Calls are counted from ``sfu:calls:{w}``, which the worker updates before it answers
        ``open_call``, so back-to-back placements do not wait for the next heartbeat.
        """
        statuses = await self.live_workers()
        if not statuses:
            raise ControlError(NO_WORKERS, "no SFU worker is alive")
        live = sorted(statuses)
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker in live:
                pipe.scard(WORKER_CALLS(worker))
            counts = dict(zip(live, await pipe.execute(), strict=True))
        open_ = [w for w in live if statuses[w].has_room(counts[w])]
        if not open_:
            raise ControlError(CAPACITY, "every SFU worker is at its limit; try again later")
        return min(open_, key=lambda w: (counts[w], statuses[w].load, w))

    async def worker_of(self, call_id: str) -> str:
        worker = await self.redis.get(CALL_WORKER(call_id))
        if worker is None:
            raise ControlError(NOT_FOUND, f"call {call_id} is on no SFU worker")
        return text(worker)

    async def request(
        self, worker_id: str, op: str, args: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send one request and wait for its reply; raises ControlError / ControlTimeout."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if not await self.redis.exists(ALIVE(worker_id)):
            raise ControlError(WORKER_UNAVAILABLE, f"SFU worker {worker_id} is not alive")
        request = Request(
            request_id=uuid.uuid4().hex, op=op, args=args, expires_at=time.time() + timeout
        )
        await self.redis.rpush(CONTROL(worker_id), request.model_dump_json())
        popped = await self.redis.blpop([REPLY(request.request_id)], timeout=timeout)
        if popped is None:
            raise ControlTimeout(f"SFU worker {worker_id} did not answer {op} within {timeout}s")
        reply = json.loads(popped[1])
        if "error" in reply:
            code, message = str(reply["error"]["code"]), str(reply["error"]["message"])
            if code == TIMEOUT:  # the worker gave up at the deadline (and undid the work)
                raise ControlTimeout(message)
            raise ControlError(code, message)
        result: dict[str, Any] = reply["result"]
        return result

    async def open_call(
        self,
        call_id: str,
        *,
        privileged: bool = False,
        media_timeout_s: float = DEFAULT_MEDIA_TIMEOUT_S,
        worker_id: str | None = None,
    ) -> str:
        """Open the call on ``worker_id`` (default: least loaded); returns the worker id."""
        worker = worker_id or await self.pick_worker()
        args = {"call_id": call_id, "privileged": privileged, "media_timeout_s": media_timeout_s}
        await self.request(worker, "open_call", args)
        return worker

    async def offer(self, call_id: str, party: Party, sdp: str) -> str:
        """A party's SDP offer; returns the worker's answer SDP."""
        worker = await self.worker_of(call_id)
        args = {"call_id": call_id, "party": party, "sdp": sdp}
        return str((await self.request(worker, "offer", args))["sdp"])

    async def watch(self, call_id: str, watcher_id: str, sdp: str) -> str:
        worker = await self.worker_of(call_id)
        args = {"call_id": call_id, "watcher_id": watcher_id, "sdp": sdp}
        return str((await self.request(worker, "watch", args))["sdp"])

    async def unwatch(self, call_id: str, watcher_id: str) -> None:
        worker = await self.worker_of(call_id)
        await self.request(worker, "unwatch", {"call_id": call_id, "watcher_id": watcher_id})

    async def close_call(self, call_id: str) -> None:
        """Idempotent: closing an unknown (or already closed) call does nothing."""
        try:
            worker = await self.worker_of(call_id)
        except ControlError:
            return
        await self.request(worker, "close_call", {"call_id": call_id})

    async def privatize(self, worker_id: str, call_id: str) -> dict[str, Any]:
        """Make an open call's room privileged (:class:`Privatize`): ``{"watchers": [ids
        dropped], "recording_discarded": bool}``."""
        return await self.request(worker_id, "privatize", {"call_id": call_id})

    async def stats(self, worker_id: str) -> dict[str, Any]:
        return await self.request(worker_id, "stats", {})

    async def held_by_worker(self, call_id: str) -> bool:
        """Whether a worker still holds the call (its room is open or closing)."""
        return bool(await self.redis.exists(CALL_WORKER(call_id)))

    async def recording_report(self, call_id: str) -> tuple[str, ...] | None:
        """What the worker reported when it closed the call's recording (its problems, empty
        if whole); ``None`` if no worker closed it (it died, was cut off, or is still busy)."""
        raw = await self.redis.get(RECORDING_REPORT(call_id))
        if raw is None:
            return None
        return tuple(str(p) for p in json.loads(raw).get("problems", []))

    async def dead_workers(self) -> dict[str, list[str]]:
        """Registered workers whose alive key expired, with the calls they still held."""
        ids = sorted(text(w) for w in await self.redis.smembers(WORKERS()))
        dead: dict[str, list[str]] = {}
        for worker in ids:
            if not await self.redis.exists(ALIVE(worker)):
                calls = await self.redis.smembers(WORKER_CALLS(worker))
                dead[worker] = sorted(text(c) for c in calls)
        return dead

    async def last_beat(self, worker_id: str) -> float | None:
        """When the worker last heartbeat (Unix time), while it is registered or unclaimed:
        a dead worker's calls are charged up to then, not up to when its death was noticed."""
        raw = await self.redis.hget(LAST_BEATS(), worker_id)
        return float(raw) if raw is not None else None

    async def claim_dead_worker(self, worker_id: str) -> list[str] | None:
        """Forget a dead worker and return its calls, exactly once across signaling nodes.

        ``None`` if the worker is alive or another node already claimed it. The caller ends
        the returned calls with ``connection_lost``.
        """
        keys = [WORKERS(), ALIVE(worker_id), WORKER_CALLS(worker_id), LAST_BEATS()]
        result = await self._claim(keys=keys, args=[worker_id])
        if result is None:
            return None
        return sorted(text(c) for c in result)

    def events(self, consumer: str, handler: EventHandler, **options: Any) -> EventConsumer:
        """A consumer of ``sfu:events`` in group ``signaling`` (call ``start()``/``stop()``)."""
        from media.events import EventConsumer  # built on this module's messages

        return EventConsumer(self.redis, consumer, handler, **options)
