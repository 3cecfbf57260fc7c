"""Shared plumbing for the JSON HTTP APIs: bearer-token guard, body parsing, error shape.

Every handler runs behind :func:`guarded`: token auth (401), the app's request policy
(a revoked token: 401; too many requests from one subject: 429 with ``Retry-After``), role
(403), and every failure as ``{"error": {"code", "message"}}``, never a stack trace. A guarded
route's handler is a bound method of :class:`Guarded`, which carries the roles it admits
(:func:`roles_of`), so tests can list every route's roles from the router itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from core.directory import Directory
from core.domain import Staff
from core.tokens import Claims, TokenError, Tokens, bearer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
JSON_TYPES = ("application/json",)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request, Claims], Awaitable[web.StreamResponse]]
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class RequestPolicy(Protocol):
    """What a node checks on every authenticated request beyond the token's signature."""

    async def admit(self, request: web.Request, claims: Claims) -> None:
        """Raise :class:`ApiError` to refuse (revoked: 401, rate limited: 429)."""


REQUEST_POLICY: web.AppKey[RequestPolicy] = web.AppKey("request_policy", RequestPolicy)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {what}")
    return "; ".join(parts)


def _is_json(content_type: str | None) -> bool:
    """No Content-Type at all, or a JSON one (``application/json``, ``application/*+json``)."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


async def parse_body(request: web.Request, model: type[M], hint: str = "") -> M:
    """The request's JSON body as ``model``: 415 if sent as something else than JSON, 400 if
    it is not JSON (or nested past what a parser should follow) or too big, else 422."""
    if not _is_json(request.headers.get("Content-Type")):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(400, "invalid_request", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(400, "invalid_request", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", describe(exc) + hint) from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """The request's query parameters as ``model``: 400 for a repeated one, else 422."""
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if repeated:
        raise ApiError(400, "invalid_request", f"repeated query parameter: {', '.join(repeated)}")
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", describe(exc)) from None


class Guarded:
    """An aiohttp handler: ``handler`` behind bearer auth for ``roles`` and the error shape."""

    def __init__(self, tokens: Tokens, roles: Collection[str], handler: Handler) -> None:
        self.tokens = tokens
        self.roles = frozenset(roles)
        self.handler = handler

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            claims = self.tokens.verify(bearer(request.headers.get("Authorization")))
        except TokenError as exc:
            return error_response(401, "unauthorized", str(exc))
        try:
            policy = request.app.get(REQUEST_POLICY)
            if policy is not None:
                await policy.admit(request, claims)
            if claims.role not in self.roles:
                needed = " or ".join(sorted(self.roles))
                return error_response(403, "forbidden", f"this needs a {needed} token")
            return await self.handler(request, claims)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)
        except web.HTTPRequestEntityTooLarge:
            return error_response(400, "invalid_request", "the body is too large")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal", "internal error; nothing was changed")


def guarded(tokens: Tokens, roles: Collection[str], handler: Handler) -> AiohttpHandler:
    """Wrap ``handler`` with bearer auth for ``roles`` and the uniform error shape."""
    return Guarded(tokens, roles, handler).handle


def roles_of(handler: object) -> frozenset[str] | None:
    """The roles a route's handler admits, or None if it is not guarded (a public route)."""
    guard = getattr(handler, "__self__", None)
    return guard.roles if isinstance(guard, Guarded) else None


async def known_admin(directory: Directory, claims: Claims) -> Staff:
    """The seeded admin an admin token speaks for (403 if there is none): its scope."""
    staff = await directory.staff(claims.subject)
    if staff is None or staff.role != "admin":
        raise ApiError(403, "forbidden", f"{claims.subject!r} is not a known admin")
    return staff
