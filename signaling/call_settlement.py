"""The end-of-call chain's settle step: the charge (billing), the family's push saying what it
cost, and the call counted on its facility's day for the admins' board."""

from __future__ import annotations

from billing_hooks import Settlement
from push.notifier import FamilyPush
from signaling.call_state import CallRecord
from signaling.facility_board import FacilityBoard
from signaling.ports import CallBilling


class CallSettlement:
    def __init__(self, billing: CallBilling, notifier: FamilyPush, board: FacilityBoard) -> None:
        self._billing = billing
        self._notifier = notifier
        self._board = board

    async def settle(self, record: CallRecord) -> Settlement:
        """Settle once (billing drops repeats, however often the chain is retried), push the
        charge to the family's devices (the outbox drops repeats too), count the call."""
        settlement = await self._billing.settle(record)
        self._notifier.call_ended(
            record.family_id,
            record.call_id,
            record.end_reason,
            record.duration_s,
            settlement.charged_cents,
        )
        if record.connected_at:
            await self._board.settled(record, settlement.charged_cents)
        return settlement
