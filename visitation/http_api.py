"""Shared plumbing for the JSON HTTP APIs: bearer-token guard, body parsing, error shape.

Every handler runs behind :func:`guarded`: token auth (401), role (403), and every failure as
``{"error": {"code", "message"}}`` with 400/401/403/404/409/422, never a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from visitation.tokens import Claims, TokenError, Tokens, bearer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request, Claims], Awaitable[web.StreamResponse]]
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {what}")
    return "; ".join(parts)


async def parse_body(request: web.Request, model: type[M], hint: str = "") -> M:
    """The request's JSON body as ``model``: 400 if it is not JSON or too big, else 422."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(400, "invalid_request", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(400, "invalid_request", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", describe(exc) + hint) from None


def guarded(tokens: Tokens, roles: Collection[str], handler: Handler) -> AiohttpHandler:
    """Wrap ``handler`` with bearer auth for ``roles`` and the uniform error shape."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            claims = tokens.verify(bearer(request.headers.get("Authorization")))
        except TokenError as exc:
            return error_response(401, "unauthorized", str(exc))
        if claims.role not in roles:
            needed = " or ".join(sorted(roles))
            return error_response(403, "forbidden", f"this needs a {needed} token")
        try:
            return await handler(request, claims)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(400, "invalid_request", "the body is too large")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal", "internal error; nothing was changed")

    return run
