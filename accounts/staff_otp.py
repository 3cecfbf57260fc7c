"""Enrolling a staff member's TOTP second factor: a new secret is pending until a code made from
it is confirmed; only then does sign-in ask for codes (and a second factor enabled before stays
on until the new one is confirmed)."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.credentials import Credentials
from accounts.sealed import SealBroken
from accounts.totp import matching_step, new_secret, otpauth_uri, qr_svg
from core.directory import Directory
from core.domain import Staff
from core.http_api import ApiError
from core.tokens import Claims


@dataclass(frozen=True)
class Enrolment:
    otpauth_uri: str
    qr_svg: str


class StaffOtp:
    def __init__(self, credentials: Credentials, directory: Directory) -> None:
        self._credentials = credentials
        self._directory = directory

    async def _staff(self, claims: Claims) -> Staff:
        staff = await self._directory.staff(claims.subject)
        if staff is None or staff.role != claims.role:
            raise ApiError(403, "forbidden", f"{claims.subject!r} is not a known {claims.role}")
        return staff

    async def enrol(self, claims: Claims) -> Enrolment:
        staff = await self._staff(claims)
        secret = new_secret()
        await self._credentials.begin_totp(staff.id, secret)
        uri = otpauth_uri(secret, staff.id)
        return Enrolment(uri, qr_svg(uri))

    async def confirm(self, claims: Claims, otp: str) -> None:
        staff = await self._staff(claims)
        try:
            secret = await self._credentials.pending_totp(staff.id)
        except SealBroken:  # sealed under another server secret: enrol again
            secret = None
        if secret is None:
            raise ApiError(
                409,
                "invalid_state",
                "nothing to confirm: enrol first (POST /api/v1/account/staff/otp)",
            )
        step = matching_step(secret, otp)
        if step is None:
            raise ApiError(
                422, "invalid_request", "otp: not the current code of the enrolled authenticator"
            )
        if not await self._credentials.enable_totp(staff.id, secret):
            raise ApiError(409, "invalid_state", "the enrolment changed meanwhile; enrol again")
        await self._credentials.use_totp_step(staff.id, step)  # this code is spent
