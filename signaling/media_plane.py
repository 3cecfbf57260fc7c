"""The call lifecycle's media port (:class:`signaling.ports.CallMedia`), over the one Redis
control channel to the SFU workers: room for a call, its room opened on the least-loaded live
worker, and closed again (with its watchers)."""

from __future__ import annotations

import logging

from core.errors import ErrorCode, ProtocolError
from media.control import CAPACITY, ControlError, SfuControl
from signaling.call_state import CallRecord
from signaling.monitoring import Monitoring

log = logging.getLogger(__name__)


class MediaPlane:
    def __init__(
        self, control: SfuControl, monitoring: Monitoring, media_timeout_s: float = 15.0
    ) -> None:
        self.control = control
        self._monitoring = monitoring
        self._media_timeout_s = media_timeout_s

    async def admit(self) -> None:
        """``call.place`` -> ``capacity`` when live workers exist and none has room.

        With no worker alive at all the call still rings (the media plane may be restarting);
        it then ends ``connection_lost`` at accept, as before."""
        try:
            await self.control.pick_worker()
        except ControlError as exc:
            if exc.code == CAPACITY:
                raise ProtocolError(
                    ErrorCode.CAPACITY, "no room for another call now; try again later"
                ) from exc

    async def open(self, record: CallRecord) -> str:
        """The worker now holding the call's room (raises :class:`ControlError`)."""
        return await self.control.open_call(
            record.call_id, privileged=record.privileged, media_timeout_s=self._media_timeout_s
        )

    async def close(self, record: CallRecord) -> bool:
        await self._monitoring.clear_watchers(record.call_id)
        try:
            # Ask the worker the call was placed on (or, if its placement never completed,
            # whichever worker holds it): a dead one cannot close its room cleanly.
            if record.worker_id:
                args = {"call_id": record.call_id}
                await self.control.request(record.worker_id, "close_call", args)
            else:
                await self.control.close_call(record.call_id)
        except ControlError as exc:
            log.warning("closing call %s on its worker failed: %s", record.call_id, exc)
            return False
        return True
