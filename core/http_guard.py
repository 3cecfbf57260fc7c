"""What every HTTP request of a node goes through, whatever its route.

- :func:`json_errors`: an unknown route, a wrong method, a body too large, or any failure a
  handler let out answers ``{"error": {"code", "message"}}`` (never plain text, never a trace);
- :func:`address_limits`: too many requests (or new Socket.IO connections) from one address
  answer 429 with ``Retry-After``;
- :class:`NodeRequestPolicy`: on every authenticated API request (see
  :class:`core.http_api.Guarded`), a revoked token (its subject's, or that one token) is refused and one subject's requests
  are rate limited;
- the ``Server`` header names no software or version, even on the 400 that aiohttp answers
  itself to bytes that are no HTTP request (and :func:`runner` logs those in one line);
- :func:`runner`: what aiohttp refuses before the app sees a request (a header over 8 KiB, NUL
  in a header, ``Content-Length: -1``, Content-Length with Transfer-Encoding, no HTTP at all)
  answers the same JSON error shape, with a fixed message that quotes nothing of the input.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from aiohttp import http_exceptions as bad
from aiohttp import web, web_response
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from core.http_api import REQUEST_POLICY, AiohttpHandler, ApiError, error_response
from core.quiet_log import one_line_logger
from core.rate_limits import RateLimiter
from core.revocation import Revocations
from core.tokens import Claims

log = logging.getLogger(__name__)

SERVER_HEADER = "visitation"
SOCKETIO_PATH = "/socket.io/"
_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def rate_limited(retry_after: float, what: str) -> ApiError:
    seconds = str(int(retry_after))
    return ApiError(
        429,
        "rate_limited",
        f"too many {what}; try again in {seconds} s",
        headers={"Retry-After": seconds},
    )


@web.middleware
async def json_errors(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = exc.reason if exc.status != 405 else f"{request.method} is not allowed here"
        if exc.status == 404:
            message = f"no such route: {request.path[:200]}"
        code = _CODES.get(exc.status, "internal" if exc.status >= 500 else "invalid_request")
        return error_response(exc.status, code, message, headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path[:200])
        return error_response(500, "internal", "internal error; nothing was changed")


def address_limits(limiter: RateLimiter) -> Middleware:
    """429 past ``http_address`` requests, or ``connect_address`` new Socket.IO connections
    (an Engine.IO request without ``sid``; the requests of a connection are not counted)."""

    @web.middleware
    async def limit(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        address = request.remote or "unknown"
        if request.path.startswith(SOCKETIO_PATH):
            if "sid" in request.query:
                return await handler(request)
            retry = await limiter.hit("connect_address", address)
            what = "new connections from your address"
        else:
            retry = await limiter.hit("http_address", address)
            what = "requests from your address"
        if retry is not None:
            err = rate_limited(retry, what)
            return error_response(err.status, err.code, err.message, err.headers)
        return await handler(request)

    return limit


class NodeRequestPolicy:
    def __init__(self, revocations: Revocations, limiter: RateLimiter) -> None:
        self._revocations = revocations
        self._limiter = limiter

    async def admit(self, request: web.Request, claims: Claims) -> None:
        if await self._revocations.is_revoked(claims.role, claims.subject, claims.issued_at):
            raise ApiError(401, "unauthorized", "token revoked")
        retry = await self._limiter.hit("http_subject", claims.role, claims.subject)
        if retry is not None:
            raise rate_limited(retry, "requests with your token")


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


# aiohttp's default for responses no app prepares (its own 400 to a request it cannot parse).
vars(web_response)["SERVER_SOFTWARE"] = SERVER_HEADER


#: What to say about a request aiohttp's parser refused, by the error's class (most specific
#: first): fixed words, never the parser's message (which quotes the offending bytes).
_REFUSALS: Final[tuple[tuple[type[bad.HttpProcessingError], str], ...]] = (
    (bad.LineTooLong, "the request line or a header is too long (limit 8 KiB)"),
    (bad.InvalidHeader, "a header's name or value is not valid (e.g. NUL or a control byte)"),
    (bad.BadHttpMethod, "this is not an HTTP request"),
    (bad.BadStatusLine, "the request line is not valid HTTP/1.1"),
    (bad.InvalidURLError, "the request's target is not a valid URL"),
    (bad.PayloadEncodingError, "the body's length or chunked encoding is not valid"),
    (bad.HttpProcessingError, "the request is not valid HTTP/1.1"),
)


def refusal(status: int, exc: BaseException | None) -> web.Response:
    """The JSON answer to a request aiohttp refused before any app saw it (connection closed)."""
    if status >= 500:
        message = "internal error; nothing was changed"
    else:
        message = next(
            (words for kind, words in _REFUSALS if isinstance(exc, kind)),
            "the request is not valid HTTP/1.1",
        )
    code = _CODES.get(status, "internal" if status >= 500 else "invalid_request")
    response = error_response(status, code, message)
    response.force_close()
    return response


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, but its own error answers are :func:`refusal`'s JSON."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's: the log line, and ConnectionError if a response was already under way.
        super().handle_error(request, status, exc, message)
        return refusal(status, exc)


class _JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections answer refusals in JSON."""

    async def _make_server(self) -> Server:
        made = await super()._make_server()
        return _JsonErrorServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


def runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner to serve ``app`` with: a request that is no HTTP is one warning line, and
    is answered in JSON (``kwargs``: more of :class:`aiohttp.web.AppRunner`'s, e.g.
    ``shutdown_timeout``)."""
    return GuardedRunner(
        app,
        handle_signals=False,
        access_log=None,
        logger=one_line_logger("aiohttp.server"),
        **kwargs,
    )


def install(app: web.Application, revocations: Revocations, limiter: RateLimiter) -> None:
    """Put the guards on ``app`` (before it starts; errors outermost, so a 429 is JSON too)."""
    app.middlewares.append(json_errors)
    app.middlewares.append(address_limits(limiter))
    app[REQUEST_POLICY] = NodeRequestPolicy(revocations, limiter)
    app.on_response_prepare.append(_server_header)
