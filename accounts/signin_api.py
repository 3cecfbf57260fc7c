"""The sign-in routes of PROTOCOL v1.2 "Accounts and sign-in" (see :mod:`accounts.signin`).

- ``POST /api/v1/signup`` ``{"email", "password", "name", "phone"?}`` -> 201
  ``{"family_id", "email_verified": false, "verified": false}``;
- ``POST /api/v1/signup/confirm`` ``{"code"}`` -> ``{"email_verified": true}`` (410
  ``code_expired``);
- ``POST /api/v1/login`` ``{"email", "password"}`` or ``{"staff_id", "password", "otp"?}`` ->
  ``{"token", "role", "subject", "expires_at"}`` (401 ``invalid_credentials`` /
  ``otp_required``, 429 for a locked account);
- ``POST /api/v1/logout`` (any role but ``device``) revokes the presenting token;
- ``POST /api/v1/password-reset`` ``{"email"}`` -> 202, always;
- ``POST /api/v1/password-reset/confirm`` ``{"code", "password"}`` -> 200;
- ``POST /api/v1/account/staff/otp`` (staff) -> ``{"otpauth_uri", "qr_svg"}`` (an SVG
  ``data:`` URI of the QR code); ``.../otp/confirm`` ``{"otp"}`` -> ``{"otp_enabled": true}``.

The routes without a token answer the same JSON error shape as guarded ones (:func:`public`),
and every request counts against its address's rate limit (:mod:`core.http_guard`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Self

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from accounts.credentials import normalise_email
from accounts.passwords import MAX_LENGTH
from accounts.signin import SignIn
from accounts.staff_otp import StaffOtp
from core.domain import Id, Name
from core.http_api import AiohttpHandler, ApiError, error_response, guarded, parse_body
from core.tokens import ROLES, Claims, Tokens

log = logging.getLogger(__name__)

STAFF_ROLES = ("monitor", "investigator", "admin")
SIGN_OUT_ROLES = tuple(role for role in ROLES if role != "device")  # a device only signs in

Email = Annotated[str, Field(max_length=20_000), AfterValidator(normalise_email)]
Password = Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]
Code = Annotated[str, Field(min_length=1, max_length=128)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 ().\-]{2,31}$")]
Otp = Annotated[str, Field(min_length=1, max_length=16)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignUpBody(_Body):
    email: Email
    password: Password
    name: Name
    phone: Phone | None = None


class CodeBody(_Body):
    code: Code


class LoginBody(_Body):
    email: Email | None = None
    staff_id: Id | None = None
    password: Password
    otp: Otp | None = None

    @model_validator(mode="after")
    def _one_account(self) -> Self:
        if (self.email is None) == (self.staff_id is None):
            raise ValueError("give either email (a family) or staff_id (staff)")
        return self


class ResetBody(_Body):
    email: Email


class NewPasswordBody(_Body):
    code: Code
    password: Password


class OtpBody(_Body):
    otp: Otp


PublicHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def public(handler: PublicHandler) -> AiohttpHandler:
    """A route without a token: its refusals are ``{"error": {"code", "message"}}`` too."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except web.HTTPRequestEntityTooLarge:
            return error_response(400, "invalid_request", "the body is too large")

    return handle


class SignInApi:
    def __init__(self, signin: SignIn, otp: StaffOtp) -> None:
        self._signin = signin
        self._otp = otp

    async def sign_up(self, request: web.Request) -> web.StreamResponse:
        body = await parse_body(request, SignUpBody)
        family_id = await self._signin.sign_up(body.email, body.password, body.name, body.phone)
        return web.json_response(
            {"family_id": family_id, "email_verified": False, "verified": False}, status=201
        )

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        body = await parse_body(request, CodeBody)
        await self._signin.confirm(body.code)
        return web.json_response({"email_verified": True})

    async def login(self, request: web.Request) -> web.StreamResponse:
        body = await parse_body(request, LoginBody)
        if body.email is not None:
            signed = await self._signin.sign_in_family(body.email, body.password)
        else:
            assert body.staff_id is not None
            signed = await self._signin.sign_in_staff(body.staff_id, body.password, body.otp)
        return web.json_response(signed.body())

    async def logout(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        await self._signin.sign_out(claims)
        return web.json_response({"revoked": True})

    async def request_reset(self, request: web.Request) -> web.StreamResponse:
        body = await parse_body(request, ResetBody)
        await self._signin.request_reset(body.email)
        return web.json_response({}, status=202)

    async def reset(self, request: web.Request) -> web.StreamResponse:
        body = await parse_body(request, NewPasswordBody)
        await self._signin.reset(body.code, body.password)
        return web.json_response({})

    async def enrol_otp(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        enrolment = await self._otp.enrol(claims)
        return web.json_response({"otpauth_uri": enrolment.otpauth_uri, "qr_svg": enrolment.qr_svg})

    async def confirm_otp(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        body = await parse_body(request, OtpBody)
        await self._otp.confirm(claims, body.otp)
        return web.json_response({"otp_enabled": True})


def add_signin_routes(app: web.Application, *, signin: SignIn, tokens: Tokens) -> SignInApi:
    api = SignInApi(signin, StaffOtp(signin.credentials, signin.directory))
    router = app.router
    router.add_post("/api/v1/signup", public(api.sign_up))
    router.add_post("/api/v1/signup/confirm", public(api.confirm))
    router.add_post("/api/v1/login", public(api.login))
    router.add_post("/api/v1/logout", guarded(tokens, SIGN_OUT_ROLES, api.logout))
    router.add_post("/api/v1/password-reset", public(api.request_reset))
    router.add_post("/api/v1/password-reset/confirm", public(api.reset))
    router.add_post("/api/v1/account/staff/otp", guarded(tokens, STAFF_ROLES, api.enrol_otp))
    router.add_post(
        "/api/v1/account/staff/otp/confirm", guarded(tokens, STAFF_ROLES, api.confirm_otp)
    )
    return api
