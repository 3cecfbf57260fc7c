"""Socket.IO handlers: authenticate on connect, then route each event to the call service.

Every event is wrapped the same way: the caller's role is checked (``forbidden``), the session's
policy admits it (live token, rate limits: ``rate_limited``), the payload is validated
(``invalid_request``), and any refusal becomes a PROTOCOL.md ack. Nothing a client sends can
raise out of a handler, so no input affects the server or other connections. ``routes`` lists
every event with the roles it admits.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import socketio
from pydantic import BaseModel, ValidationError

from core.directory import Directory
from core.errors import ErrorCode, ProtocolError
from core.ice_servers import IceServers
from core.tokens import ROLES, Claims, TokenError, Tokens
from signaling.calls import RINGING_FOR_TABLET, CallService, family_room, monitors_room, tablet_room
from signaling.metrics import ADMISSION_REFUSALS, SOCKET_EVENTS
from signaling.monitoring import Monitoring
from signaling.payloads import CallRef, Empty, Flag, Id, PlaceCall, RtcOffer, Terminate
from signaling.session import Session as Session
from signaling.session_policy import SessionPolicy

if TYPE_CHECKING:
    from signaling.media_bridge import MediaBridge

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
Handler = Callable[[Session, Any], Awaitable[dict[str, Any]]]


class TabletVisits(Protocol):
    async def tablet_list(self, resident_id: str) -> dict[str, Any]:
        """``visits.list``: the resident's scheduled visits (PROTOCOL v1.2)."""
        ...


class PlaceVisitCall(PlaceCall):
    """``call.place``; PROTOCOL v1.2 adds ``visit_id`` (a due scheduled visit)."""

    visit_id: Id | None = None


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "payload"
    return f"{where}: {err['msg']}"


class SocketApi:
    """Binds the protocol's events to a python-socketio server."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        tokens: Tokens,
        directory: Directory,
        calls: CallService,
        policy: SessionPolicy,
        monitoring: Monitoring,
        media: MediaBridge,
        visits: TabletVisits,
        ice_servers: IceServers | None = None,
    ) -> None:
        self.sio = sio
        self.ice_servers = ice_servers or IceServers()
        self.tokens = tokens
        self.directory = directory
        self.calls = calls
        self.monitoring = monitoring
        self.media = media
        self.visits = visits
        self.sessions: dict[str, Session] = {}
        self.policy = policy
        policy.attach(self.sessions)
        self.routes: dict[str, frozenset[str]] = {}  # event -> roles
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        sio.on("*", self._unknown)
        # The route table: every event a client may send, who may send it, its payload, and
        # what handles it.
        routes: list[tuple[str, set[str], type[BaseModel], Handler]] = [
            ("call.place", {"tablet"}, PlaceVisitCall, self._place),
            ("call.cancel", {"tablet"}, CallRef, self._cancel),
            ("call.accept", {"family"}, CallRef, self._accept),
            ("call.reject", {"family"}, CallRef, self._reject),
            ("call.hangup", {"tablet", "family"}, CallRef, self._hangup),
            ("rtc.offer", {"tablet", "family"}, RtcOffer, media.offer),
            ("monitor.calls", {"monitor"}, Empty, monitoring.list_calls),
            ("monitor.watch", {"monitor"}, RtcOffer, media.watch),
            ("monitor.unwatch", {"monitor"}, CallRef, media.unwatch),
            ("monitor.terminate", {"monitor"}, Terminate, self._terminate),
            ("monitor.flag", {"monitor"}, Flag, monitoring.flag),
            # Additions to PROTOCOL.md (for the pages): who am I, whom may this tablet call,
            # its scheduled visits (v1.2), and its recent calls (from the server, not the page).
            ("session.info", set(ROLES), Empty, self._session_info),
            ("contacts.list", {"tablet"}, Empty, self._contacts),
            ("visits.list", {"tablet"}, Empty, self._visits),
            ("calls.recent", {"tablet"}, Empty, self._recent),
        ]
        for event, roles, model, handler in routes:
            self._route(event, roles, model, handler)

    def _route(
        self,
        event: str,
        roles: set[str],
        model: type[P],
        handler: Callable[[Session, P], Awaitable[dict[str, Any]]],
    ) -> None:
        async def wrapped(sid: str, *args: Any) -> dict[str, Any]:
            ack = await self._dispatch(event, sid, roles, model, handler, args)
            SOCKET_EVENTS.labels(event, "ok" if ack.get("ok") else ack["error"]["code"]).inc()
            return ack

        self.sio.on(event, wrapped)
        self.routes[event] = frozenset(roles)

    async def _dispatch(
        self,
        event: str,
        sid: str,
        roles: set[str],
        model: type[P],
        handler: Callable[[Session, P], Awaitable[dict[str, Any]]],
        args: tuple[Any, ...],
    ) -> dict[str, Any]:
        session = self.sessions.get(sid)
        try:
            if session is None:
                raise ProtocolError(ErrorCode.FORBIDDEN, "not authenticated")
            if session.role not in roles:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN, f"{event} is not allowed for {session.role}"
                )
            await self.policy.admit_event(session, event)
            if len(args) > 1:
                raise ProtocolError(ErrorCode.INVALID_REQUEST, "expected a single JSON object")
            data = args[0] if args else {}
            if not isinstance(data, dict):
                raise ProtocolError(ErrorCode.INVALID_REQUEST, "payload must be a JSON object")
            try:
                payload = model.model_validate(data)
            except ValidationError as exc:
                raise ProtocolError(ErrorCode.INVALID_REQUEST, _describe(exc)) from exc
            await self.policy.admit_payload(session, event, payload)
            result = await handler(session, payload)
            return {"ok": True, **result}
        except ProtocolError as exc:
            return exc.to_ack()
        except Exception:
            log.exception("%s failed for %s", event, sid)
            return ProtocolError(ErrorCode.INTERNAL, "internal error; nothing was changed").to_ack()

    # -- connection ---------------------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = self.tokens.verify(token)
        except TokenError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from exc
        session = await self._session_for(sid, claims)
        session.issued_at, session.expires_at = claims.issued_at, claims.expires_at
        await self.policy.admit_connect(session)
        self.sessions[sid] = session
        if session.role == "tablet":
            await self.sio.enter_room(sid, tablet_room(session.subject))
        elif session.role == "family":
            await self.sio.enter_room(sid, family_room(session.subject))
        elif session.role == "monitor":
            for facility_id in session.facility_ids:
                await self.sio.enter_room(sid, monitors_room(facility_id))
        await self.calls.presence.add(sid, session.role, session.subject)
        if session.role == "family":
            # PROTOCOL v1.2: a family that connects while a call rings for it (e.g. opened from
            # the push notification) gets that call's call.incoming at once.
            self.calls.ring_on_connect(sid, session.subject, lambda: self._connected(sid))

    def _connected(self, sid: str) -> bool:
        """The socket is connected (the server has sent its CONNECT: events reach it now)."""
        return bool(self.sio.manager.is_connected(sid, "/")) and sid in self.sessions

    async def _session_for(self, sid: str, claims: Claims) -> Session:
        refuse = socketio.exceptions.ConnectionRefusedError
        if claims.role == "tablet":
            resident = await self.directory.resident(claims.subject)
            if resident is None:
                raise refuse(f"unknown resident {claims.subject!r}")
            return Session(sid, claims.role, claims.subject, [resident.facility_id])
        if claims.role == "family":
            if await self.directory.family(claims.subject) is None:
                raise refuse(f"unknown family {claims.subject!r}")
            return Session(sid, claims.role, claims.subject)
        # Staff (admins too): a seeded member of that role, scoped to its facilities.
        staff = await self.directory.staff(claims.subject)
        if staff is None or staff.role != claims.role:
            raise refuse(f"unknown {claims.role} {claims.subject!r}")
        facility_ids = list(staff.facility_ids)
        if "*" in facility_ids:
            facility_ids = await self.directory.all_facility_ids()
        return Session(sid, claims.role, claims.subject, facility_ids)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        await self.calls.presence.remove(sid)
        if session.role == "monitor":
            try:
                await self.media.monitor_gone(session)  # its watches end
            except Exception:
                log.exception("ending the watches of %s failed", sid)
        if session.role == "tablet" and not await self.calls.presence.is_online(
            "tablet", session.subject
        ):
            # A tablet that goes away while ringing cancels its call.
            call_id = await self.calls.store.active_call("resident", session.subject)
            record = await self.calls.store.get(call_id) if call_id else None
            if record is not None and record.state in RINGING_FOR_TABLET:
                try:
                    await self.calls.cancel(record)
                except ProtocolError:
                    pass

    async def _unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        SOCKET_EVENTS.labels("unknown", ErrorCode.INVALID_REQUEST.value).inc()
        return ProtocolError(ErrorCode.INVALID_REQUEST, f"unknown event {event[:64]!r}").to_ack()

    # -- events -------------------------------------------------------------------------------

    async def _place(self, session: Session, payload: PlaceVisitCall) -> dict[str, Any]:
        try:
            record = await self.calls.place(session.subject, payload.contact_id, payload.visit_id)
        except ProtocolError as exc:  # the call rules' refusals and admission's (capacity)
            ADMISSION_REFUSALS.labels(exc.code.value).inc()
            raise
        return {"call_id": record.call_id}

    async def _cancel(self, session: Session, payload: CallRef) -> dict[str, Any]:
        record = await self.calls.get_for(payload.call_id, "tablet", session.subject)
        await self.calls.cancel(record)
        return {}

    async def _accept(self, session: Session, payload: CallRef) -> dict[str, Any]:
        record = await self.calls.get_for(payload.call_id, "family", session.subject)
        await self.calls.accept(record)
        return {}

    async def _reject(self, session: Session, payload: CallRef) -> dict[str, Any]:
        record = await self.calls.get_for(payload.call_id, "family", session.subject)
        await self.calls.reject(record)
        return {}

    async def _hangup(self, session: Session, payload: CallRef) -> dict[str, Any]:
        record = await self.calls.get_for(payload.call_id, session.role, session.subject)
        await self.calls.hangup(record, by=session.role)
        return {}

    async def _terminate(self, session: Session, payload: Terminate) -> dict[str, Any]:
        record = await self.monitoring.scoped(session, payload.call_id, allow_privileged=False)
        if not record.live:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"the call is already {record.state}")
        await self.calls.terminate(record, by=session.subject, why=payload.reason)
        return {}

    async def _recent(self, session: Session, payload: Empty) -> dict[str, Any]:
        """The resident's recent calls, newest first (an addition to PROTOCOL.md)."""
        found = await self.calls.history.recent(session.subject)
        return {"calls": [dataclasses.asdict(call) for call in found]}

    async def _visits(self, session: Session, payload: Empty) -> dict[str, Any]:
        return await self.visits.tablet_list(session.subject)

    async def _session_info(self, session: Session, payload: Empty) -> dict[str, Any]:
        name = session.subject
        extra: dict[str, Any] = {}
        if session.role == "tablet":
            resident = await self.directory.resident(session.subject)
            name = resident.name if resident else name
            # PROTOCOL v1.2 pricing plans (an addition): the resident's free minutes left, where
            # the facility's plan has any (a family-paid plan without free minutes: nothing).
            facility = await self.directory.facility(resident.facility_id) if resident else None
            pricing = facility.pricing if facility is not None else None
            has_free = pricing is not None and (pricing.payer == "agency" or pricing.free_minutes)
            if facility is not None and has_free and self.calls.plans is not None:
                extra["allowance"] = await self.calls.plans.allowance_info(
                    session.subject, facility
                )
        elif session.role == "family":
            family = await self.directory.family(session.subject)
            name = family.name if family else name
        return {
            "role": session.role,
            "id": session.subject,
            "name": name,
            "facility_ids": session.facility_ids,
            # PROTOCOL.md v1.1: STUN/TURN for RTCPeerConnection, TURN credentials for 24 h.
            "ice_servers": [
                server.as_json()
                for server in self.ice_servers.for_subject(session.role, session.subject)
            ],
            **extra,
        }

    async def _contacts(self, session: Session, payload: Empty) -> dict[str, Any]:
        contacts = []
        for contact in await self.directory.contacts_of(session.subject):
            family = await self.directory.family(contact.family_id)
            if contact.status == "approved" and family is not None:
                contacts.append(
                    {"id": family.id, "name": family.name, "privileged": contact.privileged}
                )
        return {"contacts": contacts}
