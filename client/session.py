"""A Socket.IO client speaking PROTOCOL.md, for tablets, family apps and monitors.

Used by the tests, the load generator and demos. Every server event is queued so callers can
``await client.next("call.incoming")`` instead of sleeping.

A client reconnects by itself after any disconnect it did not ask for (the node stopped or
restarted, the network dropped), with exponential backoff and jitter (:class:`Backoff`), for as
long as it takes; events keep queueing across reconnects. The exception is a session that is
over: ``session.expired``, or a reconnect refused because the token expired, was revoked or is
invalid; then :attr:`ProtocolClient.expired` is set and it stays offline.
``await client.wait_reconnected()`` waits for the next reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import socketio

from client.backoff import Backoff

#: A refusal that no retry can change: the token is over (expired, revoked, invalid, unknown).
SESSION_OVER = re.compile(
    r"expired|revoked|invalid token|malformed token|missing token|^unknown ", re.IGNORECASE
)
EXPIRED_EVENT = "session.expired"


class AckError(Exception):
    """The server refused a request: ``code`` is the PROTOCOL.md error code."""

    def __init__(self, event: str, code: str, message: str) -> None:
        super().__init__(f"{event}: {code}: {message}")
        self.code = code
        self.message = message


class RefusedError(Exception):
    """The server refused the connection; the message says why."""


class ProtocolClient:
    def __init__(
        self,
        url: str,
        token: str,
        name: str = "",
        *,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``reconnect`` False: a lost connection stays lost (as the server left it)."""
        self.url = url
        self.token = token
        self.name = name
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.clock = clock
        # python-socketio's own reconnection gives up after a server-side disconnect, and its
        # jitter is +-0.5 s whatever the delay: ours instead (see _reconnect_loop).
        self.sio = socketio.AsyncClient(reconnection=False)
        self._events: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.received: list[tuple[str, Any]] = []
        self._refusal: str | None = None
        #: Reconnects so far, and when each happened (``clock``).
        self.reconnects = 0
        self.reconnected_at: list[float] = []
        self.disconnected_at: list[float] = []
        #: Reconnect attempts that failed (the server away, or refusing for a while).
        self.reconnect_failures = 0
        #: Set while connected; ``reconnected`` is set at every reconnect (clear it to reuse).
        self.online = asyncio.Event()
        self.reconnected = asyncio.Event()
        #: The session is over (session.expired, or a reconnect refused for its token).
        self.expired = asyncio.Event()
        self._next_reconnect = asyncio.Event()
        self._ever_connected = False
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None
        self.sio.on("*", self._on_event)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)

    async def _on_event(self, event: str, data: Any = None) -> None:
        if event == EXPIRED_EVENT:
            self.expired.set()  # before its disconnect arrives: no reconnect then
        self.received.append((event, data))
        self._events[event].put_nowait(data if isinstance(data, dict) else {"data": data})

    async def _on_connect_error(self, data: Any = None) -> None:
        self._refusal = data.get("message") if isinstance(data, dict) else str(data)

    async def _on_connect(self) -> None:
        self.online.set()
        if not self._ever_connected:
            self._ever_connected = True
            return
        self.reconnects += 1
        self.reconnected_at.append(self.clock())
        self.reconnected.set()
        woken, self._next_reconnect = self._next_reconnect, asyncio.Event()
        woken.set()

    async def _on_disconnect(self, reason: str = "") -> None:
        self.online.clear()
        self.disconnected_at.append(self.clock())
        if self._closing or not self.reconnect or self.expired.is_set():
            return
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(
                self._reconnect_loop(), name=f"reconnect {self.name}"
            )

    async def _reconnect_loop(self) -> None:
        """Attempts after backoff delays until one connects, the session is over or close()."""
        attempt = 0
        while not (self._closing or self.expired.is_set()):
            await asyncio.sleep(self.backoff.delay(attempt))
            attempt += 1
            if self._closing or self.sio.connected:
                return
            try:
                await self.connect()
            except RefusedError as exc:
                self.reconnect_failures += 1
                if SESSION_OVER.search(str(exc)):
                    self.expired.set()
                    return
            except Exception:  # any failed attempt (refused, timed out) is retried
                self.reconnect_failures += 1
            else:
                return

    @property
    def reconnecting(self) -> bool:
        """A reconnect is under way (waiting for its next attempt, or making it)."""
        return self._reconnecting is not None and not self._reconnecting.done()

    async def connect(self, timeout: float = 5.0) -> ProtocolClient:
        self._refusal = None
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

    async def wait_reconnected(self, count: int | None = None, timeout: float = 30.0) -> None:
        """Until :attr:`reconnects` reaches ``count`` (default: one more than now)."""
        target = self.reconnects + 1 if count is None else count
        deadline = time.monotonic() + timeout
        while self.reconnects < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name or 'client'}: not reconnected within {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next_reconnect.wait(), remaining)

    async def close(self) -> None:
        self._closing = True
        task, self._reconnecting = self._reconnecting, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A reconnect cancelled mid-handshake may leave the transport open without the session.
        if self.sio.connected or self.sio.eio.state == "connected":
            try:
                await self.sio.disconnect()
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves
                # else engine.io's read loop was cancelled under us (the server closed the
                # connection mid-read): the connection is closed all the same

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
