"""One line per error a client's bytes cause: no stack trace per bad frame or request.

Libraries under the server (Engine.IO, aiohttp's HTTP parser) log an error with its traceback
for each malformed frame or request they refuse: a cheap way to flood the log. Given to them
as their logger, :class:`OneLineLogger` writes each such error as one warning line instead.
Errors in our own handlers never reach these loggers (they are caught and answered first).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

MAX_DETAIL = 120


class OneLineLogger(logging.LoggerAdapter[logging.Logger]):
    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        error = kwargs.pop("exc_info", None)
        if not isinstance(error, BaseException):
            error = sys.exc_info()[1]
        self.warning(f"{msg}: %s", *args, short(error), **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("exc_info", None)
        self.warning(msg, *args, **kwargs)


def one_line_logger(name: str) -> OneLineLogger:
    return OneLineLogger(logging.getLogger(name), {})


def short(error: BaseException | None) -> str:
    if error is None:
        return "no detail"
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
