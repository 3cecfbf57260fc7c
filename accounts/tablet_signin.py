"""Residents sign in on shared facility tablets (PROTOCOL v1.2 "Accounts and sign-in").

- ``PUT /api/v1/admin/residents/{resident_id}/pin`` (admin, its facilities) ``{"pin"}``: 4 to 8
  digits, stored as an Argon2id hash (:mod:`accounts.pins`);
- ``POST /api/v1/tablet/login`` (``device``: a shared tablet enrolled with ``visitation device
  FACILITY_ID``, whose token's subject is the facility) ``{"resident_id", "pin"}`` → ``{"token",
  "role": "tablet", "subject", "expires_at"}``, a ``tablet`` token for 30 minutes. Only residents
  of the device's facility sign in on it. A wrong PIN, an unknown resident and a resident of
  another facility all answer the same 401 ``invalid_credentials`` after the same one hash;
  5 failures for one resident id in 15 minutes lock it (429 ``rate_limited`` with ``Retry-After``),
  whichever tablet they come from;
- ``POST /api/v1/tablet/renew`` (``tablet``; an addition): a fresh 30-minute token for the same
  resident, which the tablet page asks for while the resident is active (its idle timeout is the
  token's end). The page reconnects its socket with the new token.

A device token can do nothing else: every other route admits other roles only (403), and
Socket.IO refuses it at connect (it is no resident, family or staff member).
"""

from __future__ import annotations

from typing import Annotated, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError

from accounts.lockout import Lockout
from accounts.pins import PIN, Pins
from core.directory import Directory
from core.domain import Id
from core.http_api import ApiError, guarded, known_admin, parse_body
from core.http_guard import rate_limited
from core.tokens import Claims, Tokens

TABLET_TTL_S: Final = 30 * 60
LOCKOUT_NAME: Final = "pin"
PinText = Annotated[str, StringConstraints(max_length=64)]
_ID: Final[TypeAdapter[str]] = TypeAdapter(Id)


class PinChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pin: PinText


class PinSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resident_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    pin: PinText


def _invalid() -> ApiError:
    return ApiError(401, "invalid_credentials", "wrong resident id or PIN")


class TabletSignIn:
    def __init__(self, directory: Directory, tokens: Tokens, pins: Pins, lockout: Lockout) -> None:
        self._directory = directory
        self._tokens = tokens
        self._pins = pins
        self._lockout = lockout

    async def set_pin(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        resident_id = request.match_info["resident_id"]
        change = await parse_body(request, PinChange)
        resident = await self._directory.resident(resident_id)
        if resident is None or not admin.covers(resident.facility_id):
            raise ApiError(404, "not_found", f"no resident {resident_id[:64]!r} in your facilities")
        if not PIN.match(change.pin):
            raise ApiError(422, "invalid_request", "pin: a PIN is 4 to 8 digits")
        await self._pins.set(resident.id, change.pin)
        await self._lockout.clear(resident.id)
        return web.json_response({"resident_id": resident.id, "pin": "set"})

    def _signed_in(self, resident_id: str) -> web.Response:
        token, issued = self._tokens.mint("tablet", resident_id, TABLET_TTL_S)
        return web.json_response(
            {
                "token": token,
                "role": "tablet",
                "subject": resident_id,
                "expires_at": issued.expires_at,
            }
        )

    async def login(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        ask = await parse_body(request, PinSignIn)
        if await self._directory.facility(claims.subject) is None:
            raise ApiError(403, "forbidden", f"this tablet's facility {claims.subject!r} is gone")
        retry = await self._lockout.locked(ask.resident_id)
        if retry is not None:  # the same answer as a locked account's sign-in
            raise rate_limited(retry, "wrong PINs for this resident")
        resident = (
            await self._directory.resident(ask.resident_id) if _is_id(ask.resident_id) else None
        )
        here = resident if resident is not None and resident.facility_id == claims.subject else None
        if not await self._pins.check(here.id if here is not None else None, ask.pin):
            await self._lockout.failed(ask.resident_id)
            raise _invalid()
        assert here is not None  # a PIN matched: the resident is real and of this facility
        await self._lockout.clear(here.id)
        return self._signed_in(here.id)

    async def renew(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        resident = await self._directory.resident(claims.subject)
        if resident is None:
            raise ApiError(404, "not_found", f"no resident {claims.subject!r}")
        return self._signed_in(resident.id)


def _is_id(value: str) -> bool:
    try:
        _ID.validate_python(value)
    except ValidationError:
        return False
    return True


def add_tablet_routes(
    app: web.Application, *, tokens: Tokens, directory: Directory, pins: Pins, lockout: Lockout
) -> TabletSignIn:
    api = TabletSignIn(directory, tokens, pins, lockout)
    app.router.add_put(
        "/api/v1/admin/residents/{resident_id}/pin", guarded(tokens, {"admin"}, api.set_pin)
    )
    app.router.add_post("/api/v1/tablet/login", guarded(tokens, {"device"}, api.login))
    app.router.add_post("/api/v1/tablet/renew", guarded(tokens, {"tablet"}, api.renew))
    return api
