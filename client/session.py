"""A Socket.IO client speaking PROTOCOL.md, for tablets, family apps and monitors.

Used by the tests, the load generator and demos. Every server event is queued so callers can
``await client.next("call.incoming")`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import socketio


class AckError(Exception):
    """The server refused a request: ``code`` is the PROTOCOL.md error code."""

    def __init__(self, event: str, code: str, message: str) -> None:
        super().__init__(f"{event}: {code}: {message}")
        self.code = code
        self.message = message


class RefusedError(Exception):
    """The server refused the connection; the message says why."""


class ProtocolClient:
    def __init__(self, url: str, token: str, name: str = "") -> None:
        self.url = url
        self.token = token
        self.name = name
        self.sio = socketio.AsyncClient(reconnection=False)
        self._events: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.received: list[tuple[str, Any]] = []
        self._refusal: str | None = None
        self.sio.on("*", self._on_event)
        self.sio.on("connect_error", self._on_connect_error)

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.received.append((event, data))
        self._events[event].put_nowait(data if isinstance(data, dict) else {"data": data})

    async def _on_connect_error(self, data: Any = None) -> None:
        self._refusal = data.get("message") if isinstance(data, dict) else str(data)

    async def connect(self, timeout: float = 5.0) -> ProtocolClient:
        try:
            await self.sio.connect(
                self.url,
                auth={"token": self.token},
                transports=["websocket"],
                wait_timeout=timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            raise RefusedError(self._refusal or str(exc)) from exc
        return self

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def __aenter__(self) -> ProtocolClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, event: str, payload: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        """Send an event and return its ack, raw (``{"ok": ..., ...}``)."""
        ack = await self.sio.call(event, {} if payload is None else payload, timeout=timeout)
        assert isinstance(ack, dict), f"{event}: ack is not an object: {ack!r}"
        return ack

    async def request(
        self, event: str, payload: Any = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send an event; return the ack's fields, or raise :class:`AckError`."""
        ack = await self.call(event, payload, timeout)
        if not ack.get("ok"):
            error = ack.get("error") or {}
            raise AckError(event, str(error.get("code")), str(error.get("message")))
        return {k: v for k, v in ack.items() if k != "ok"}

    async def next(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next ``event`` received (including one already queued)."""
        try:
            return await asyncio.wait_for(self._events[event].get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.name or 'client'}: no {event} within {timeout}s") from None

    def pending(self, event: str) -> int:
        return self._events[event].qsize()

    def events_named(self, event: str) -> list[Any]:
        return [data for name, data in self.received if name == event]

    # -- conveniences for the common flows --

    async def ice_servers(self) -> list[dict[str, Any]]:
        """``session.info``'s STUN/TURN servers (TURN credentials valid 24 h): ask again for
        each new peer connection rather than keeping them."""
        servers = (await self.request("session.info")).get("ice_servers", [])
        return [s for s in servers if isinstance(s, dict)]

    async def place(self, contact_id: str) -> str:
        return str((await self.request("call.place", {"contact_id": contact_id}))["call_id"])

    async def accept(self, call_id: str) -> None:
        await self.request("call.accept", {"call_id": call_id})

    async def hangup(self, call_id: str) -> None:
        await self.request("call.hangup", {"call_id": call_id})
