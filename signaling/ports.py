"""What the call lifecycle needs from the rest of the node, as narrow protocols.

:class:`~signaling.calls.CallService` is given one object for each (in its constructor, by the
composition root, :mod:`visitation.node`) and calls them in the order its methods write out:

- at place: ``media.admit`` (room on the media plane, refused at the door);
- at accept: ``privilege.recheck``, then ``recording.begin`` (which records no privileged call), then
  ``media.open`` (the call's room on an SFU worker), then the tablet hears ``call.accepted``;
- at connect: ``billing.authorize`` (how long the call may last), then the transition, then
  ``billing.connected``;
- at the one-minute warning: ``billing.warning``;
- at the end, off the caller's path (:class:`~signaling.call_end.CallFinisher`):
  ``billing.settle``, the family's ``call.ended`` with its charge, ``media.close``, then
  ``recording.finalize``.

Nothing here knows Socket.IO or Redis; the implementations are :mod:`signaling.billing_bridge`,
:mod:`signaling.media_plane`, :mod:`signaling.recording_bridge` and :mod:`signaling.privilege`.
"""

from __future__ import annotations

from typing import Protocol

from billing_hooks import Settlement
from signaling.call_state import CallRecord


class CallBilling(Protocol):
    async def authorize(self, record: CallRecord) -> int:
        """Seconds the call may last from now (0: end it now); puts the hold for them."""
        ...

    async def connected(self, record: CallRecord) -> None:
        """The call connected with ``record.allowed_seconds`` (billing's events)."""
        ...

    async def warning(self, record: CallRecord) -> None:
        """One minute remains (a repeated call is dropped by billing itself)."""
        ...

    async def settle(self, record: CallRecord) -> Settlement:
        """Charge the ended call, exactly once however often it is retried."""
        ...


class CallMedia(Protocol):
    async def admit(self) -> None:
        """Raise ``ProtocolError(capacity)`` if the media plane has no room for a call."""
        ...

    async def open(self, record: CallRecord) -> str:
        """Open the call's room on a worker; its id. Raises if no worker could take it."""
        ...

    async def close(self, record: CallRecord) -> bool:
        """Close the call's room (and its watchers); whether its worker closed it cleanly."""
        ...


class CallRecording(Protocol):
    async def begin(self, record: CallRecord) -> None:
        """Catalog the call's recording (``complete: false``) before its room opens."""
        ...

    async def finalize(self, record: CallRecord, closed_cleanly: bool) -> None:
        """Seal, sign and catalog the call's file once its room is closed."""
        ...


class CallPrivilege(Protocol):
    async def recheck(self, record: CallRecord) -> CallRecord:
        """``record`` with its contact's current privileged status."""
        ...
