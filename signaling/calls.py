"""The call's life, top to bottom: place, ring, accept/reject/cancel/time out, connect, the
warning, the end, and the end-of-call chain.

The rules that admit a call (SPEC "Call rules" 1-2) are :mod:`signaling.call_rules`; every
state change is a row of the transition table (:mod:`signaling.call_machine`) applied atomically
by :class:`CallStore`; the collaborators (billing, media, recording, privilege) are given in the
constructor (:mod:`signaling.ports`) and called where each step says. Every event goes out
through one emitter (which, with the Socket.IO Redis manager, reaches clients on any node).

A family is reachable with an open socket or a push subscription (SPEC "Reaching families"). A
call rings every socket of the family and, through ``push`` (:class:`push.notifier.FamilyPush`,
which only queues: a push never holds up a call), every subscribed device at once; when it stops
ringing (answered, declined, canceled, timed out) every device is told, and a socket that
connects while it rings gets its ``call.incoming`` at once (:meth:`CallService.ring_on_connect`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from billing_hooks import Ledger
from billing_hooks.metering.plans import PricingPlans
from core.directory import Directory
from core.errors import ErrorCode, ProtocolError
from core.facility_stats import FacilityStats
from media.control import ControlError
from push.notifier import FamilyPush
from signaling.call_end import CallFinisher
from signaling.call_events import Emitter as Emitter
from signaling.call_events import call_summary as call_summary
from signaling.call_events import ended_payload, parties
from signaling.call_events import family_room as family_room
from signaling.call_events import monitors_room as monitors_room
from signaling.call_events import tablet_room as tablet_room
from signaling.call_history import CallHistory
from signaling.call_machine import (
    CONNECT_TIMEOUT,
    RING_TIMEOUT,
    SETTLE,
    TIME_LIMIT,
    WARNING,
    CallEvent,
    move,
)
from signaling.call_rules import CallRules
from signaling.call_settlement import CallSettlement
from signaling.call_state import CallRecord, CallState, CallStore
from signaling.facility_board import FacilityBoard
from signaling.ports import CallBilling, CallMedia, CallPrivilege, CallRecording
from signaling.presence import Presence
from signaling.ring_resend import RingResend
from signaling.timers import DurableTimers
from visits.calls import VisitCalls

log = logging.getLogger(__name__)

WARNING_BEFORE_S = 60
RINGING_FOR_TABLET = (CallState.RINGING, CallState.DECLINED)  # a reject is not shown early
IN_CALL = move(CallEvent.END).sources  # answered: what a hang-up ends


@dataclass
class CallService:
    """The call's life, each step in the order it happens (see :mod:`signaling.ports` for
    what each collaborator does, and :mod:`signaling.call_machine` for every transition)."""

    directory: Directory
    ledger: Ledger
    store: CallStore
    presence: Presence
    timers: DurableTimers
    emit: Emitter
    billing: CallBilling
    media: CallMedia
    recording: CallRecording
    # Decides again whether the call is privileged, from its contact's current status (SPEC
    # "Recording"; signaling.privilege): at accept, before it is cataloged and placed.
    privilege: CallPrivilege
    ring_timeout_s: float = 45.0
    connect_timeout_s: float = 30.0
    settle_retry_s: float = 30.0  # when a settlement left undone (node died, failure) is retried
    # Web Push to the family's devices; None: one on this store's Redis (no sender needed to
    # queue; the node runs the sender, push.service.PushNode).
    push: FamilyPush | None = None
    # Pricing plans (SPEC "Who pays"): whether a call may ring under its facility's plan, and
    # how much of it is free (call.incoming); None: families pay every minute.
    plans: PricingPlans | None = None
    # Scheduled visits (PROTOCOL v1.2): a call placed for a due visit, ending at the slot's
    # end; in a ``scheduled`` facility only those. None: on-demand calls only.
    visits: VisitCalls | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.notifier = self.push or FamilyPush(self.store.redis)
        self.rules = CallRules(
            self.directory,
            self.ledger,
            self.store,
            self.presence,
            self.notifier,
            ring_timeout_s=self.ring_timeout_s,
            plans=self.plans,
            visits=self.visits,
            clock=self.clock,
        )
        self.resend = RingResend(
            self.store, self.ledger, self.emit, ring_timeout_s=self.ring_timeout_s, plans=self.plans
        )
        self.timers.on(RING_TIMEOUT, self._on_ring_timeout)
        self.timers.on(CONNECT_TIMEOUT, self._on_connect_timeout)
        self.timers.on(WARNING, self._on_warning)
        self.timers.on(TIME_LIMIT, self._on_time_limit)
        # The end-of-call chain (and the settle timer that retries it) runs off the caller's path.
        self.stats = FacilityStats(self.store.redis)
        self.board = FacilityBoard(self.stats, self.directory, self.clock)  # the admins' board
        settlement = CallSettlement(self.billing, self.notifier, self.board)
        self.history = CallHistory(self.store.redis)  # the tablets' calls.recent
        self.finisher = CallFinisher(
            self.store,
            self.timers,
            self.emit,
            settle=settlement.settle,
            teardown=self._teardown,
            retry_s=self.settle_retry_s,
            clock=self.clock,
        )

    async def stop(self) -> None:
        """Let end-of-call chains in progress finish (bounded); their settle timers cover
        the rest. Then the pushes they raised are queued."""
        await self.resend.stop()
        await self.finisher.stop()
        await self.notifier.stop()

    # -- lookups ------------------------------------------------------------------------------

    async def get_for(self, call_id: str, role: str, subject: str) -> CallRecord:
        """The call, if ``subject`` is a party to it in ``role``; else ``not_found``."""
        record = await self.store.get(call_id)
        owner = {"tablet": record.resident_id, "family": record.family_id} if record else {}
        if record is None or owner.get(role) != subject:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no call {call_id!r} of yours")
        return record

    # -- tablet -------------------------------------------------------------------------------

    async def place(
        self, resident_id: str, contact_id: str, visit_id: str | None = None
    ) -> CallRecord:
        """Place a call (for ``visit_id``, a due scheduled visit); a refusal is also counted on
        the facility's board, by its reason."""
        try:
            return await self._place(resident_id, contact_id, visit_id)
        except ProtocolError as exc:
            await self.board.refused(resident_id, exc.code.value)
            raise

    async def _place(
        self, resident_id: str, contact_id: str, visit_id: str | None = None
    ) -> CallRecord:
        admitted = await self.rules.admit(resident_id, contact_id, visit_id)
        await self.media.admit()  # refused at the door, not spread over running calls
        record = admitted.record
        if not await self.store.create(record, self.ring_timeout_s):
            raise ProtocolError(ErrorCode.BUSY, "a party is already in a call")
        if admitted.visit is not None and self.visits is not None:
            await self.visits.placed(admitted.visit, record.call_id)
        await self.emit("call.incoming", admitted.incoming, family_room(record.family_id))
        self.notifier.call_incoming(
            record.family_id,
            record.call_id,
            *parties(record),
            record.created_at + self.ring_timeout_s,
        )
        await self.emit(
            "call.ringing", {"call_id": record.call_id}, tablet_room(record.resident_id)
        )
        await self._to_monitors("monitor.call_started", record)
        log.info("call placed", extra=_ids(record))
        return record

    async def cancel(self, record: CallRecord) -> None:
        result = await self.store.transition(
            record,
            move(CallEvent.CANCEL),
            set_fields={"ended_at": self.clock(), "end_reason": "canceled"},
        )
        if not result.applied and result.previous == CallState.DECLINED:
            # Rejected, which the tablet must not learn: its cancel succeeds as usual (the
            # family stopped ringing already; the record stays "rejected").
            result = await self.store.transition(record, move(CallEvent.WITHDRAW))
            if result.applied:
                await self.history.add(record, "canceled")
                return
        if not result.applied:
            raise ProtocolError(
                ErrorCode.INVALID_STATE, f"the call can no longer be canceled ({result.previous})"
            )
        await self.emit("call.canceled", {"call_id": record.call_id}, family_room(record.family_id))
        await self.history.add(record, "canceled")
        self._ring_stopped(record, "canceled", missed=True)
        await self._finished(record.call_id, "canceled")

    # -- family -------------------------------------------------------------------------------

    async def accept(self, record: CallRecord) -> None:
        now = self.clock()
        result = await self.store.transition(
            record,
            move(CallEvent.ACCEPT),
            set_fields={"accepted_at": now},
            due={CONNECT_TIMEOUT: now + self.connect_timeout_s},
        )
        if not result.applied:
            raise ProtocolError(
                ErrorCode.INVALID_STATE, f"the call can no longer be accepted ({result.previous})"
            )
        self._ring_stopped(record, "answered", missed=False)  # the other devices stop ringing
        updated = await self.store.get(record.call_id)
        assert updated is not None
        # An admin may have marked the contact (un)privileged while it rang.
        updated = await self.privilege.recheck(updated)
        # Cataloged (the recording port records no privileged call), then open on an SFU
        # worker, before the tablet hears of the answer (so its first offer finds the room
        # open, recording from its first packet).
        await _step("recording.begin", updated, self.recording.begin(updated))
        try:
            worker = await self.media.open(updated)
        except ControlError:
            log.exception("no SFU worker could take call %s", record.call_id)
            await self.end(updated, "connection_lost")
            return
        await self.store.annotate(record.call_id, {"worker_id": worker})
        await self.emit(
            "call.accepted", {"call_id": record.call_id}, tablet_room(record.resident_id)
        )
        await self._to_monitors("monitor.call_updated", updated)

    async def reject(self, record: CallRecord) -> None:
        """The family declines: its device stops ringing now, the tablet hears
        ``call.unanswered`` at the ring timeout (the ring timer stays armed), as if unanswered."""
        result = await self.store.transition(
            record,
            move(CallEvent.REJECT),
            set_fields={"ended_at": self.clock(), "end_reason": "rejected"},
        )
        if not result.applied:
            raise ProtocolError(
                ErrorCode.INVALID_STATE, "the call is no longer ringing and cannot be rejected"
            )
        self._ring_stopped(record, "declined", missed=False)
        await self._finished(record.call_id, "rejected")

    # -- media ----------------------------------------------------------------------------------

    async def connect(self, record: CallRecord) -> bool:
        """Media flows from both parties: billing starts, and the call's cap is fixed now."""
        allowed = await self.billing.authorize(record)  # the hold for it is put now
        if self.visits is not None:  # a visit's call also stops at its slot's end
            allowed = await self.visits.cap(record.call_id, allowed)
        if allowed <= 0:
            # Nothing affordable any more (spent or closed since the call rang).
            await self.end(record, "time_limit")
            return False
        now = self.clock()
        ends_at = now + allowed
        result = await self.store.transition(
            record,
            move(CallEvent.CONNECT),
            set_fields={"connected_at": now, "allowed_seconds": allowed, "ends_at": ends_at},
            due={WARNING: ends_at - WARNING_BEFORE_S, TIME_LIMIT: ends_at},
        )
        if not result.applied:
            return False
        if self.visits is not None:
            await self.visits.connected(record.call_id)  # completed at its end, not missed
        payload = {"call_id": record.call_id, "allowed_seconds": allowed, "ends_at": ends_at}
        await self.emit("call.connected", payload, tablet_room(record.resident_id))
        await self.emit("call.connected", payload, family_room(record.family_id))
        connected = await self.store.get(record.call_id)
        assert connected is not None
        await self._to_monitors("monitor.call_updated", connected)
        await _step("billing.connected", connected, self.billing.connected(connected))
        log.info("call connected", extra={**_ids(connected), "allowed_seconds": allowed})
        return True

    # -- either party -------------------------------------------------------------------------

    async def hangup(self, record: CallRecord, by: str) -> None:
        if record.state in RINGING_FOR_TABLET and by == "tablet":
            await self.cancel(record)
            return
        if record.state == CallState.RINGING:
            try:
                await (self.cancel(record) if by == "tablet" else self.reject(record))
                return
            except ProtocolError:
                record = await self.store.get(record.call_id) or record  # answered meanwhile
        if record.state in IN_CALL:
            await self.end(record, "hangup", by=by)

    async def terminate(self, record: CallRecord, by: str, why: str) -> bool:
        """A monitor ends the call (``terminated``), ringing or not; the parties never learn
        who, the record keeps it."""
        await self.store.annotate(record.call_id, {"terminated_by": by, "terminate_reason": why})
        return await self.end(record, "terminated", event=CallEvent.TERMINATE)

    async def end(
        self,
        record: CallRecord,
        reason: str,
        by: str = "",
        event: CallEvent = CallEvent.END,
        at: float | None = None,
    ) -> bool:
        """End a live call once; False if it was already over. ``at``: when it really ended,
        if earlier than now (e.g. its SFU worker's last heartbeat): the charge stops there.

        The tablet hears ``call.ended`` at once; the rest (settle, the family's ``call.ended``
        with its charge, tearing down the media) runs in the background
        (:class:`~signaling.call_end.CallFinisher`). The transition also arms a durable
        ``settle`` timer, so that if this node dies or settlement fails before that completes,
        any node finishes the call later, exactly once.
        """
        now = self.clock()
        ended_at = now if at is None else max(min(now, at), record.connected_at)
        result = await self.store.transition(
            record,
            move(event),
            set_fields={"ended_at": ended_at, "end_reason": reason, "ended_by": by},
            due={SETTLE: now + self.settle_retry_s},
        )
        if not result.applied:
            return False
        ended = await self.store.get(record.call_id)
        assert ended is not None
        await self.emit("call.ended", ended_payload(ended), tablet_room(ended.resident_id))
        await self._to_monitors("monitor.call_ended", ended, reason=reason)
        await self.history.add(ended, "ended")
        log.info("call ended", extra={**_ids(ended), **_ended(ended)})
        self.finisher.finish_later(ended)
        return True

    # -- timers -------------------------------------------------------------------------------

    async def _on_ring_timeout(self, call_id: str) -> None:
        record = await self.store.get(call_id)
        if record is None:
            return
        if record.state == CallState.DECLINED:
            # Rejected earlier: only now does the tablet hear it, like an unanswered call.
            result = await self.store.transition(record, move(CallEvent.REJECT_SHOWN))
            if result.applied:
                await self._tell_unanswered(record)
        elif await self._unanswered(record, "ring_timeout"):
            await self.emit("call.canceled", {"call_id": call_id}, family_room(record.family_id))
            self._ring_stopped(record, "timeout", missed=True)

    async def _on_connect_timeout(self, call_id: str) -> None:
        record = await self.store.get(call_id)
        if record is not None and move(CallEvent.CONNECT_TIMEOUT).allows(record.state):
            # Only while still not connected: a connect racing this timer wins.
            await self.end(record, "connection_lost", event=CallEvent.CONNECT_TIMEOUT)

    async def _on_warning(self, call_id: str) -> None:
        record = await self.store.get(call_id)
        if record is None or record.state != CallState.CONNECTED:
            return
        # A retried timer warns nobody twice; the moment is kept for the recording's timeline.
        if await self.store.claim_once(call_id, WARNING, stamp=("warned_at", self.clock())):
            payload = {"call_id": call_id, "remaining_s": WARNING_BEFORE_S}
            await self.emit("call.warning", payload, tablet_room(record.resident_id))
            await self.emit("call.warning", payload, family_room(record.family_id))
        await _step("billing.warning", record, self.billing.warning(record))  # drops repeats

    async def _on_time_limit(self, call_id: str) -> None:
        record = await self.store.get(call_id)
        if record is not None:
            await self.end(record, "time_limit")

    # -- reaching the family -----------------------------------------------------------------

    def _ring_stopped(self, record: CallRecord, reason: str, missed: bool) -> None:
        self.notifier.ring_stopped(
            record.family_id, record.call_id, *parties(record), reason, missed
        )

    def ring_on_connect(self, sid: str, family_id: str, connected: Callable[[], bool]) -> None:
        """A family socket just connected: a call ringing for the family rings there too."""
        self.resend.on_connect(sid, family_id, connected)

    # -- helpers ------------------------------------------------------------------------------

    async def _unanswered(self, record: CallRecord, why: str) -> bool:
        result = await self.store.transition(
            record,
            move(CallEvent.RING_TIMEOUT),
            set_fields={"ended_at": self.clock(), "end_reason": why},
        )
        if result.applied:
            await self._tell_unanswered(record)
            await self._finished(record.call_id, why)
        return result.applied

    async def _tell_unanswered(self, record: CallRecord) -> None:
        # Identical for reject and timeout: the tablet must not tell them apart.
        await self.history.add(record, "unanswered")
        await self.emit(
            "call.unanswered", {"call_id": record.call_id}, tablet_room(record.resident_id)
        )

    async def _finished(self, call_id: str, reason: str) -> None:
        """A call that never connected is over (canceled, rejected, unanswered)."""
        record = await self.store.get(call_id)
        if record is not None:
            await self._to_monitors("monitor.call_ended", record, reason=reason)
            log.info("call ended", extra={**_ids(record), "reason": reason, "duration_s": 0})

    # -- the end-of-call chain (CallFinisher: settle, the family's call.ended, teardown) ------

    async def _teardown(self, record: CallRecord) -> None:
        """The call's room closed on its worker, then its recording sealed (as far as it got
        if the worker could not close it cleanly)."""
        cleanly = await self.media.close(record)
        await self.recording.finalize(record, cleanly)  # nothing, for a privileged call

    async def _to_monitors(self, event: str, record: CallRecord, **extra: Any) -> None:
        await self.emit(event, {**call_summary(record), **extra}, monitors_room(record.facility_id))

    async def live_calls(self, facility_ids: list[str]) -> list[CallRecord]:
        return await self.store.live_calls(facility_ids)


def _ids(record: CallRecord) -> dict[str, Any]:
    """What a log line of the call carries (never a name, a token or a balance)."""
    return {"call_id": record.call_id, "facility_id": record.facility_id}


def _ended(record: CallRecord) -> dict[str, Any]:
    return {"reason": record.end_reason, "duration_s": record.duration_s}


async def _step(name: str, record: CallRecord, step: Awaitable[None]) -> None:
    """A step whose failure is logged and does not stop the call's life (billing's events,
    the recording's catalog entry)."""
    try:
        await step
    except Exception:
        log.exception("call %s: %s failed", record.call_id, name, extra=_ids(record))
