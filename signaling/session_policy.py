"""What a socket may do beyond its token's signature: live, unrevoked, within its limits.

- At connect: the token's subject is not revoked (read fresh), one subject does not open
  connections too fast (``connect_subject``) nor hold more than ``sockets_per_subject`` open on
  all nodes at once (an atomic reservation in :class:`~signaling.presence.Presence`).
- On each event: the token has not expired nor been revoked (a revocation is read at most
  one second stale), the subject is within ``events_subject``, and the event's own limit
  holds: ``call.place`` per tablet, ``monitor.flag`` per monitor and call.
- A sweep every ``sweep_s`` ends, on this node, every socket whose token expired or was
  revoked (its subject's tokens, or that one token at a logout): ``session.expired`` ``{}``,
  then disconnected. Every node sweeps its
  own sockets, so a revocation reaches all of them within about a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import socketio
from pydantic import BaseModel

from core.errors import ErrorCode, ProtocolError
from core.rate_limits import LimitName, RateLimiter
from core.revocation import Revocations
from core.tasks import Periodic, TaskPool
from signaling.presence import Presence

if TYPE_CHECKING:
    from signaling.session import Session

log = logging.getLogger(__name__)

EXPIRED_EVENT = "session.expired"
RATE_LIMITED = "rate_limited"

#: Each event's own limit: the limit's name and who it counts (after the payload is valid).
EVENT_LIMITS: Mapping[str, tuple[LimitName, Callable[[Session, Any], tuple[str, ...]]]] = {
    "call.place": ("call_place", lambda session, payload: (session.subject,)),
    "monitor.flag": ("monitor_flag", lambda session, payload: (session.subject, payload.call_id)),
}


class SessionPolicy:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        presence: Presence,
        revocations: Revocations,
        limiter: RateLimiter,
        sweep_s: float = 0.5,
    ) -> None:
        self._sio = sio
        self._sessions: Mapping[str, Session] = {}
        self._presence = presence
        self._revocations = revocations
        self._limiter = limiter
        self._ending: set[str] = set()
        self._tasks = TaskPool("end-session")
        self._sweep = Periodic("session-sweep", self.sweep, sweep_s, delay_first=True)

    def attach(self, sessions: Mapping[str, Session]) -> None:
        """The node's open sessions by sid (the Socket.IO API's)."""
        self._sessions = sessions

    # -- connect ------------------------------------------------------------------------------

    async def admit_connect(self, session: Session) -> None:
        """Raise ConnectionRefusedError (its message says why) if ``session`` may not open."""
        refuse = socketio.exceptions.ConnectionRefusedError
        if await self._revocations.is_revoked(
            session.role, session.subject, session.issued_at, fresh=True
        ):
            raise refuse("token revoked")
        retry = await self._limiter.hit("connect_subject", session.role, session.subject)
        if retry is not None:
            raise refuse(f"{RATE_LIMITED}: too many connections; try again in {int(retry)} s")
        cap = self._limiter.limits.sockets_per_subject
        if not await self._presence.reserve(session.sid, session.role, session.subject, cap):
            raise refuse(f"{RATE_LIMITED}: at most {cap} connections at once; close one first")

    # -- events -------------------------------------------------------------------------------

    async def admit_event(self, session: Session, event: str) -> None:
        """Before the payload is read: a live session, within the subject's event rate."""
        if session.expires_at <= time.time() or await self._revocations.is_revoked(
            session.role, session.subject, session.issued_at
        ):
            self.end_soon(session.sid)
            raise ProtocolError(ErrorCode.FORBIDDEN, "session expired; sign in again")
        await self._hit("events_subject", (session.role, session.subject), "events")

    async def admit_payload(self, session: Session, event: str, payload: BaseModel) -> None:
        """After the payload is valid: the event's own limit (see :data:`EVENT_LIMITS`)."""
        rule = EVENT_LIMITS.get(event)
        if rule is not None:
            name, who = rule
            await self._hit(name, who(session, payload), event)

    async def _hit(self, name: LimitName, who: tuple[str, ...], what: str) -> None:
        retry = await self._limiter.hit(name, *who)
        if retry is not None:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, f"too many {what}; try again in {int(retry)} s"
            )

    # -- expiry and revocation ------------------------------------------------------------------

    def start(self) -> None:
        self._sweep.start()

    async def stop(self) -> None:
        await self._sweep.stop()
        await self._tasks.stop(grace_s=2.0)

    async def sweep(self) -> int:
        """End this node's expired and revoked sockets; how many."""
        sessions = list(self._sessions.values())
        if not sessions:
            return 0
        revoked = await self._revocations.revoked_tokens(sessions, fresh=True)
        now = time.time()
        ended = 0
        for session, is_revoked in zip(sessions, revoked, strict=True):
            if session.expires_at <= now or is_revoked:
                ended += await self.end(session.sid)
        return ended

    def end_soon(self, sid: str) -> None:
        if sid not in self._ending:
            self._tasks.spawn(sid, lambda: self.end(sid))

    async def end(self, sid: str) -> bool:
        """``session.expired`` to ``sid``, then its disconnect (once)."""
        if sid in self._ending or sid not in self._sessions:
            return False
        self._ending.add(sid)
        try:
            await self._sio.emit(EXPIRED_EVENT, {}, to=sid, ignore_queue=True)
            await self._sio.disconnect(sid)
            log.info("ended session %s: token expired or revoked", sid)
        except Exception:
            log.exception("ending session %s failed", sid)
        finally:
            self._ending.discard(sid)
        return True
