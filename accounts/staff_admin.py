"""Admins manage their facilities' staff over HTTP (PROTOCOL v1.2), never beyond their own scope.

- ``GET /api/v1/admin/staff`` (an addition, for the admin page): the staff of the admin's
  facilities (``{"staff": [{"id", "role", "facility_ids", "manageable", "otp_enabled"}]}``;
  ``manageable``: whether this admin may change it; ``otp_enabled``: its second factor is on);
- ``PUT /api/v1/admin/staff/{staff_id}`` ``{"role", "facility_ids", "password"?,
  "reset_otp"?}``: adds or changes a staff member; ``reset_otp: true`` (an addition) turns its
  second factor off (a lost phone, or a seed sealed under an old server secret), so it signs in
  with its password and enrols again, and revokes its tokens;
- ``DELETE /api/v1/admin/staff/{staff_id}``: removes it and revokes every token it holds.

The rules, each refused with nothing changed: the new ``facility_ids`` lie within the admin's
own (``["*"]`` only for an admin of ``["*"]``) and name facilities that exist (403 / 422); an
existing member with any facility outside the admin's scope is not this admin's to change (403)
or remove (404, as if absent); an admin changes neither its own role nor removes itself (409);
a password keeps the policy (422, :func:`accounts.passwords.check_password`) and is stored by
the credentials store as a hash. A member whose role or facilities change has its older tokens
revoked, so its open sessions start again with the new scope.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from accounts.passwords import PasswordRefused, check_password
from core.directory import Directory
from core.domain import Staff, StaffRole
from core.http_api import ApiError, guarded, known_admin, parse_body
from core.revocation import Revocations
from core.tokens import Claims, Tokens

PREFIX = "/api/v1/admin/staff"


class StaffCredentials(Protocol):
    """Where staff passwords live (:class:`accounts.credentials.Credentials`)."""

    async def set_staff_password(self, staff_id: str, password: str) -> None: ...

    async def delete_staff(self, staff_id: str) -> None: ...

    async def has_totp(self, staff_id: str) -> bool: ...

    async def reset_totp(self, staff_id: str) -> None: ...


FacilityId = Annotated[str, Field(pattern=r"^([A-Za-z0-9_.\-]{1,64}|\*)$")]


class StaffChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: StaffRole
    facility_ids: Annotated[list[FacilityId], Field(min_length=1, max_length=1000)]
    password: Annotated[str, StringConstraints(max_length=1024)] | None = None
    reset_otp: bool = False


def _listed(staff: Staff, manageable: bool, otp_enabled: bool | None = None) -> dict[str, object]:
    listed: dict[str, object] = {
        "id": staff.id,
        "role": staff.role,
        "facility_ids": list(staff.facility_ids),
        "manageable": manageable,
    }
    if otp_enabled is not None:
        listed["otp_enabled"] = otp_enabled
    return listed


def within(admin: Staff, facility_ids: list[str]) -> bool:
    """Whether every one of ``facility_ids`` lies in the admin's scope (``*`` only in ``*``)."""
    if "*" in admin.facility_ids:
        return True
    return "*" not in facility_ids and all(f in admin.facility_ids for f in facility_ids)


class StaffAdminApi:
    def __init__(
        self, directory: Directory, revocations: Revocations, credentials: StaffCredentials
    ) -> None:
        self._directory = directory
        self._revocations = revocations
        self._credentials = credentials

    async def list(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        everyone = await self._directory.all_staff()
        shown = [
            _listed(
                s,
                within(admin, list(s.facility_ids)),
                await self._credentials.has_totp(s.id),
            )
            for s in everyone
            if "*" in admin.facility_ids
            or "*" in s.facility_ids  # works at the admin's facilities too
            or any(admin.covers(f) for f in s.facility_ids)
        ]
        return web.json_response({"staff": shown})

    async def put(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        staff_id = request.match_info["staff_id"]
        change = await parse_body(request, StaffChange)
        try:
            staff = Staff(id=staff_id, role=change.role, facility_ids=change.facility_ids)
        except ValueError:
            raise ApiError(422, "invalid_request", f"not a staff id: {staff_id[:64]!r}") from None
        facility_ids = list(dict.fromkeys(staff.facility_ids))
        if not within(admin, facility_ids):
            raise ApiError(
                403,
                "forbidden",
                f"facility_ids {facility_ids} go beyond your own {list(admin.facility_ids)}",
            )
        if "*" in facility_ids and len(facility_ids) > 1:
            raise ApiError(422, "invalid_request", 'facility_ids: "*" stands alone')
        known = set(await self._directory.all_facility_ids())
        unknown = [f for f in facility_ids if f != "*" and f not in known]
        if unknown:
            raise ApiError(422, "invalid_request", f"facility_ids: no facility {unknown}")
        current = await self._directory.staff(staff_id)
        if current is not None and not within(admin, list(current.facility_ids)):
            raise ApiError(
                403,
                "forbidden",
                f"staff {staff_id!r} has facilities outside yours; an admin of them may change it",
            )
        if staff_id == admin.id and change.role != "admin":
            raise ApiError(409, "invalid_request", "an admin cannot take away its own admin role")
        if change.password is not None:
            try:
                check_password(change.password, staff_id)
            except PasswordRefused as exc:
                raise ApiError(422, "password_refused", str(exc)) from None
        staff = staff.model_copy(update={"facility_ids": facility_ids})
        await self._directory.save_staff(staff)
        if change.password is not None:
            await self._credentials.set_staff_password(staff_id, change.password)
        if change.reset_otp:
            await self._credentials.reset_totp(staff_id)
        if current is not None and (current != staff or change.reset_otp):
            await self._revocations.revoke(current.role, staff_id)
        status = 201 if current is None else 200
        return web.json_response(_listed(staff, True), status=status)

    async def delete(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        staff_id = request.match_info["staff_id"]
        current = await self._directory.staff(staff_id)
        if current is None or not within(admin, list(current.facility_ids)):
            raise ApiError(404, "not_found", f"no staff {staff_id[:64]!r} in your facilities")
        if staff_id == admin.id:
            raise ApiError(409, "invalid_request", "an admin cannot remove itself")
        await self._directory.delete_staff(staff_id)
        await self._revocations.revoke(current.role, staff_id)
        await self._credentials.delete_staff(staff_id)
        return web.json_response({"id": staff_id, "deleted": True})


def add_staff_admin_routes(
    app: web.Application,
    *,
    tokens: Tokens,
    directory: Directory,
    revocations: Revocations,
    credentials: StaffCredentials,
) -> StaffAdminApi:
    api = StaffAdminApi(directory, revocations, credentials)
    admin = {"admin"}
    app.router.add_get(PREFIX, guarded(tokens, admin, api.list))
    app.router.add_put(f"{PREFIX}/{{staff_id}}", guarded(tokens, admin, api.put))
    app.router.add_delete(f"{PREFIX}/{{staff_id}}", guarded(tokens, admin, api.delete))
    return api
