"""A family socket that connects while a call rings for the family gets that call's
``call.incoming`` at once (SPEC "Reaching families": a phone that opens the app from the push,
or comes back after a network drop, rings without waiting for the next call)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from billing_hooks import Ledger
from billing_hooks.metering.plans import PricingPlans
from core.tasks import TaskPool
from signaling.call_events import Emitter, incoming_payload
from signaling.call_state import CallState, CallStore

RESEND_WAIT_S: Final = 5.0  # how long a re-sent call.incoming waits for its socket to connect


class RingResend:
    def __init__(
        self,
        store: CallStore,
        ledger: Ledger,
        emit: Emitter,
        *,
        ring_timeout_s: float,
        plans: PricingPlans | None = None,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._emit = emit
        self._ring_timeout_s = ring_timeout_s
        self._plans = plans
        self._pool = TaskPool("ring-resend", 256)

    async def stop(self) -> None:
        await self._pool.stop(grace_s=1.0)

    def on_connect(self, sid: str, family_id: str, connected: Callable[[], bool]) -> None:
        """A family socket just connected: if a call rings for the family, send it that call's
        ``call.incoming`` once the socket is connected (``connected()``; in the background)."""
        try:
            self._pool.spawn(sid, lambda: self._resend(sid, family_id, connected))
        except RuntimeError:
            pass  # stopping

    async def _resend(self, sid: str, family_id: str, connected: Callable[[], bool]) -> None:
        call_id = await self._store.active_call("family", family_id)
        record = await self._store.get(call_id) if call_id else None
        if record is None or record.state != CallState.RINGING:
            return
        deadline = time.monotonic() + RESEND_WAIT_S
        while not connected():
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)
        record = await self._store.get(record.call_id)
        if record is None or record.state != CallState.RINGING:
            return
        account = await self._ledger.balance(family_id)
        payload = incoming_payload(record, max(0, account.available_cents), self._ring_timeout_s)
        payload["free_seconds"] = 0
        if self._plans is not None:
            payload |= (
                await self._plans.quote(
                    record.resident_id,
                    record.facility_id,
                    record.max_call_seconds,
                    record.rate_cents_per_minute,
                    account.available_cents,
                )
            ).incoming()
        await self._emit("call.incoming", payload, sid)
