"""Waiting for a condition with a deadline: the one helper for tests that cannot await an event.

``await eventually(check, "what we wait for")`` polls ``check`` (a plain or an async function)
until it returns true, and fails with ``what`` once ``within_s`` has passed. The deadline is
generous on purpose: on a busy machine things take longer, and only a condition that never
comes true should fail.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], bool | Awaitable[bool]]


async def eventually(
    check: Check,
    what: str | Callable[[], str] = "the condition",
    *,
    within_s: float = 10.0,
    interval_s: float = 0.02,
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"not true within {within_s:g} s: {described}")
        await asyncio.sleep(interval_s)


def eventually_sync(
    check: Callable[[], bool],
    what: str | Callable[[], str] = "the condition",
    *,
    within_s: float = 10.0,
    interval_s: float = 0.05,
) -> None:
    """:func:`eventually` for plain (thread or process) tests that have no event loop to await."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"not true within {within_s:g} s: {described}")
        time.sleep(interval_s)
