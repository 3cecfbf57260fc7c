"""The node's python-socketio server, closed to events a client must never fire.

python-socketio dispatches a client's EVENT packet to whatever handler bears its name, its own
``connect`` and ``disconnect`` handlers included: ``42["disconnect"]`` sent over a raw
websocket would run the server's disconnect handler while the socket stays open (and
``42["connect", {}, {"token": ...}]`` would sign it in again as someone else). Here an event
must be a list whose first item is a name that is not reserved; anything else is refused with
an ``invalid_request`` ack (when the client asked for one) and one warning line.

A frame that is not Socket.IO at all (bad JSON, 8,000 nested arrays, an unknown packet type)
is one warning line too, not an error with a stack trace per frame (a cheap log flood); a
websocket frame that is not even Engine.IO closes that connection, with one warning line.
"""

from __future__ import annotations

import logging
from typing import Any

import engineio
import socketio
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet

from core.errors import ErrorCode, ProtocolError
from core.quiet_log import OneLineLogger, one_line_logger, short

log = logging.getLogger(__name__)

#: Socket.IO's reserved names (the protocol's and python-socketio's): never client events.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
MAX_EVENT_NAME = 64


def refusal(data: Any) -> str | None:
    """Why an EVENT packet's data cannot be dispatched, or None if it can."""
    if not isinstance(data, list) or not data:
        return "an event must be a list starting with its name"
    name = data[0]
    if not isinstance(name, str) or not name or len(name) > MAX_EVENT_NAME:
        return "an event name must be a string of 1 to 64 characters"
    if name in RESERVED_EVENTS:
        return f"{name!r} is a reserved event name"
    return None


ENGINEIO_TYPES = frozenset("0123456")  # open, close, ping, pong, message, upgrade, noop


class CheckedWebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp websocket, refusing text frames that are no Engine.IO packet."""

    async def wait(self) -> Any:
        data = await super().wait()
        if isinstance(data, str) and (not data or data[0] not in ENGINEIO_TYPES):
            log.warning("closing a websocket that sent a frame that is not Engine.IO")
            raise OSError("not an Engine.IO frame")  # the socket's loop closes the connection
        return data


class GuardedEngine(engineio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Engine.IO's table of driver classes, with our websocket class in it.
        drivers: dict[str, Any] = self.__dict__["_async"]
        self.__dict__["_async"] = {**drivers, "websocket": CheckedWebSocket}


def engineio_logger() -> OneLineLogger:
    """Engine.IO's logger: an error a client's input caused is one warning line, no trace."""
    return one_line_logger("engineio.server")


class GuardedServer(socketio.AsyncServer):  # type: ignore[misc]
    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return GuardedEngine

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        why = refusal(data)
        if why is None:
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        log.warning("refused an event from %s: %s", eio_sid, why)
        if id is not None:
            ack = ProtocolError(ErrorCode.INVALID_REQUEST, why).to_ack()
            await self._send_packet(
                eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=[ack])
            )

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            log.warning("malformed Socket.IO frame from %s: %s", eio_sid, short(exc))
