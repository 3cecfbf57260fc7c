"""The process's logging: what is never logged, library loggers kept quiet, text or JSON lines.

Facilities ship logs to a SIEM or a vendor's support desk, so nothing in a log line may let a
reader sign in as someone or read a call's content. Every handler :func:`setup_logging` installs
formats through :class:`RedactingFormatter`, which removes from the finished line (message,
arguments, traceback and, in JSON, every field):

- bearer tokens (JWTs: three base64url parts), ``Authorization`` and ``Cookie`` headers,
  ``token=`` in URLs;
- SDP bodies (``v=0`` and the lines after it, or a JSON ``"sdp"`` value);
- passwords, PINs and one-time codes (JSON fields and ``name=value`` forms);
- Web Push endpoints and keys (``endpoint``, ``p256dh``, ``auth``, push services' URLs);
- TURN credentials (``credential``, and the ``<expiry>:<role>:<subject>`` user names).

Engine.IO and Socket.IO log every packet at INFO: those loggers stay at WARNING unless
``VISITATION_LOG_PACKETS=1`` asks for them (and they are redacted even then).

The ids that let an operator follow one call across nodes and workers (:data:`ID_FIELDS`:
``call_id``, ``worker``, ``node``, ``role`` ...) are fields of a JSON line; a text line has the
call's (not the process's) as ``key=value`` after its message. :func:`set_context` gives every line of the process its ``node``
or ``worker``. A repeated warning is written once a minute with a count
(:mod:`core.log_repeats`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

from core.log_repeats import RepeatLimiter

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"  # and "timestamp": ISO 8601, UTC
PACKETS_ENV = "VISITATION_LOG_PACKETS"
FORMAT_ENV = "VISITATION_LOG_FORMAT"
#: Libraries that log each packet or request at INFO: WARNING unless packets are asked for.
CHATTY_LOGGERS = (
    "engineio",
    "engineio.server",
    "engineio.client",
    "socketio",
    "socketio.server",
    "aioice",  # every ICE candidate pair's check, with addresses
)
REDACTED = "[redacted]"
#: Ids a JSON line has as fields (with every other extra) to follow a call across processes.
ID_FIELDS = ("call_id", "facility_id", "node", "worker", "role", "reason", "duration_s", "repeated")
#: What a text line shows after its message (the process's own ``node``/``worker`` left out).
TEXT_FIELDS = tuple(k for k in ID_FIELDS if k not in ("node", "worker"))

_SECRET_FIELDS = "token|password|new_password|pin|otp|secret|credential|sdp|endpoint|p256dh|auth"
#: (pattern, replacement), applied in order to every finished log line.
REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON (or Python repr) fields whose value is a secret: "password": "..." / 'pin': '1234'
    (
        re.compile(
            rf"""(?P<k>["']?(?:{_SECRET_FIELDS})["']?\s*[:=]\s*)(?P<q>["'])(?:\\.|(?!(?P=q)).)*(?P=q)""",
            re.IGNORECASE | re.DOTALL,
        ),
        rf"\g<k>\g<q>{REDACTED}\g<q>",
    ),
    # One-time codes ("code": "<random>" or six digits), not error codes ("code": "not_found").
    (
        re.compile(r"""(?P<k>["']code["']\s*:\s*)(?P<q>["'])(?=[^"']*[A-Z0-9])[^"']*(?P=q)"""),
        rf"\g<k>\g<q>{REDACTED}\g<q>",
    ),
    # Headers: Authorization: Bearer ..., Cookie: ..., up to the end of the line or quote.
    (
        re.compile(r"(?P<k>\b(?:authorization|cookie|set-cookie)\b\s*[:=]\s*)[^\r\n\"']+", re.I),
        rf"\g<k>{REDACTED}",
    ),
    # Query parameters and form fields: token=..., password=..., otp=...
    (
        re.compile(rf"(?P<k>[?&;\s]?\b(?:{_SECRET_FIELDS}|code|confirm|reset)=)[^&\s\"'#]+", re.I),
        rf"\g<k>{REDACTED}",
    ),
    # JWTs anywhere (header.payload.signature, base64url).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # SDP bodies, raw or escaped in JSON (\r\n as two characters).
    (
        re.compile(r"v=0(?:\\r\\n|\\n|\r?\n)(?:[a-z]=[^\r\n\"]*(?:\\r\\n|\\n|\r?\n)?)+"),
        f"{REDACTED} sdp",
    ),
    # Web Push services' endpoint URLs.
    (
        re.compile(
            r"https?://[^\s\"']*(?:fcm\.googleapis\.com|push\.services\.mozilla\.com|"
            r"push\.apple\.com|notify\.windows\.com)[^\s\"']*",
            re.I,
        ),
        f"{REDACTED} push endpoint",
    ),
    # TURN REST user names: <unix expiry>:<role>:<subject>.
    (re.compile(r"\b\d{9,11}:(?:tablet|family|monitor|investigator|admin):[\w.\-]+"), REDACTED),
)


def redact(text: str) -> str:
    """``text`` without anything :data:`REDACTIONS` matches."""
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Redacts the record's message and traceback, formats that with ``inner`` (text or JSON),
    then redacts the whole line again (fields a formatter adds)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        clean = logging.makeLogRecord(
            {k: v for k, v in record.__dict__.items() if not k.startswith("_")}
        )
        clean.msg, clean.args = redact(record.getMessage()), None
        if record.exc_info:
            clean.exc_text = redact(self.inner.formatException(record.exc_info))
            clean.exc_info = None
        elif record.exc_text:
            clean.exc_text = redact(record.exc_text)
        return redact(self.inner.format(clean))


class TextFormatter(logging.Formatter):
    """``text_format``, then the record's :data:`TEXT_FIELDS` as ``key=value`` (those it has)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = [
            f"{k}={record.__dict__[k]}" for k in TEXT_FIELDS if record.__dict__.get(k) is not None
        ]
        return f"{line} {' '.join(ids)}" if ids else line


class ContextFilter(logging.Filter):
    """Gives every record the process's ids (``node`` or ``worker``) it does not carry."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.ids.items():
            record.__dict__.setdefault(key, value)
        return True


_CONTEXT = ContextFilter()


def set_context(**ids: str | None) -> None:
    """Every line this process logs from now on carries ``ids`` (e.g. ``node=...``,
    ``worker=...``); a None value removes one."""
    for key, value in ids.items():
        if value is None:
            _CONTEXT.ids.pop(key, None)
        else:
            _CONTEXT.ids[key] = value


def formatter(fmt: LogFormat, text_format: str = TEXT_FORMAT) -> RedactingFormatter:
    if fmt == "json":
        inner: logging.Formatter = JsonFormatter(
            JSON_FIELDS,
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )
    else:
        inner = TextFormatter(text_format)
    return RedactingFormatter(inner)


def packets_wanted() -> bool:
    return os.environ.get(PACKETS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def env_format() -> LogFormat:
    """``VISITATION_LOG_FORMAT`` (``text`` or ``json``; default ``text``)."""
    value = os.environ.get(FORMAT_ENV, "").strip().lower() or "text"
    if value not in LOG_FORMATS:
        raise ValueError(f"{FORMAT_ENV}: {value!r} is not one of {', '.join(LOG_FORMATS)}")
    return "json" if value == "json" else "text"


def setup_logging(
    level: str | int = "INFO",
    fmt: str | None = None,
    stream: IO[str] | None = None,
    text_format: str = TEXT_FORMAT,
) -> logging.Handler:
    """Replace the root logger's handlers with one redacting handler on ``stream`` (stderr),
    in ``fmt`` (default :func:`env_format`); the library loggers that log packets stay at
    WARNING unless ``VISITATION_LOG_PACKETS=1``; a repeated warning is rate-limited
    (:class:`core.log_repeats.RepeatLimiter`). Returns the handler (tests remove it)."""
    fmt = env_format() if fmt is None else fmt
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; one of: {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter("json" if fmt == "json" else "text", text_format))
    handler.addFilter(_CONTEXT)
    RepeatLimiter().attach(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    chatty = logging.DEBUG if packets_wanted() else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty)
    return handler


__all__ = [
    "ID_FIELDS",
    "LOG_FORMATS",
    "REDACTED",
    "LogFormat",
    "RedactingFormatter",
    "env_format",
    "redact",
    "set_context",
    "setup_logging",
]
