"""Repeated warnings, rate-limited with a count: volume stays bounded under load.

A warning (or error) from the same logger with the same message template is written at most
once per window (a minute); the ones after it in that window are counted, not written. The
count is said on the next line of that kind, or — when none comes — in a summary line
(``"<template> … 312 more in the last minute"``) written with the next record of any kind once
the window is over. INFO and below pass untouched (one line per event worth knowing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
#: At most this many distinct (logger, template) pairs are remembered (the oldest go first).
MAX_KEYS = 1024
_SUMMARY = "_repeat_summary"

Key = tuple[str, str]


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    level: int = logging.WARNING


def _more(count: int, window_s: float) -> str:
    span = "the last minute" if window_s == WINDOW_S else f"the last {window_s:g} s"
    return f"… {count} more in {span}"


class RepeatLimiter(logging.Filter):
    """A handler's filter: the first of a kind per ``window_s`` passes, the rest are counted.

    ``emit`` writes a summary record (the handler's ``handle``; :meth:`attach` sets it), and
    ``clock`` tells the time (injected, so tests need no sleeps)."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        min_level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.min_level = min_level
        self.emit: Callable[[logging.LogRecord], object] | None = None
        self._windows: dict[Key, _Window] = {}
        self._lock = threading.RLock()  # threads log too; a summary re-enters filter()

    def attach(self, handler: logging.Handler) -> RepeatLimiter:
        handler.addFilter(self)
        self.emit = handler.handle
        return self

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        with self._lock:
            return self._admit(record)

    def _admit(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        self._flush(now)
        if record.levelno < self.min_level:
            return True
        key = (record.name, str(record.msg))
        window = self._windows.get(key)
        if window is not None and now - window.started < self.window_s:
            window.suppressed += 1
            window.level = max(window.level, record.levelno)
            return False
        self._windows.pop(key, None)
        self._windows[key] = _Window(started=now, level=record.levelno)
        while len(self._windows) > MAX_KEYS:
            del self._windows[next(iter(self._windows))]
        return True

    def flush(self, now: float | None = None) -> None:
        """Write a summary for each window that is over with lines counted in it."""
        with self._lock:
            self._flush(self.clock() if now is None else now)

    def _flush(self, now: float) -> None:
        # Windows are kept in the order they started: only the front can be over.
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.started < self.window_s:
                return
            del self._windows[key]
            if window.suppressed and self.emit is not None:
                self.emit(self._summary(key, window))

    def _summary(self, key: Key, window: _Window) -> logging.LogRecord:
        name, template = key
        more = _more(window.suppressed, self.window_s)
        record = logging.LogRecord(name, window.level, "", 0, "%s %s", (template, more), None)
        record.__dict__[_SUMMARY] = True
        record.__dict__["repeated"] = window.suppressed
        return record


__all__ = ["MAX_KEYS", "WINDOW_S", "RepeatLimiter"]
