"""The HTTP access log: one line per request, never a query string and never a header.

Pages are opened by ``?token=<bearer>`` and Socket.IO connects with its token in the query,
so aiohttp's default access line (``%r``, the request line, and the Referer) would put tokens
in the log. :class:`AccessLog` writes the method, the path without its query, the status, the
duration, the size and the peer's address — as the message of a text line, and as fields of a
JSON line (``method``, ``path``, ``status``, ``elapsed_s``, ``bytes``, ``remote``). It goes
through the process's handler, so it is redacted and formatted like every other line.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

LOGGER = "aiohttp.access"


class AccessLog(AbstractAccessLogger):
    """aiohttp's access logger (``access_log_class``): path without query, status, duration."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.rel_url.path  # the query (``?token=``) is never part of it
        remote = request.remote or "-"
        size = response.body_length
        self.logger.info(
            "%s %s %s %.3fs %sB %s",
            request.method,
            path,
            response.status,
            time,
            size,
            remote,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status,
                "elapsed_s": round(time, 4),
                "bytes": size,
                "remote": remote,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_logger() -> logging.Logger:
    return logging.getLogger(LOGGER)


__all__ = ["LOGGER", "AccessLog", "access_logger"]
