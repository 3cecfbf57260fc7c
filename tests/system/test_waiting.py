"""The tests' wait helper fails when it should, and waits for both kinds of check."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import eventually


async def test_it_returns_once_a_plain_check_holds() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        return len(calls) >= 3

    await eventually(check, "three calls")
    assert len(calls) == 3


async def test_it_awaits_an_async_check() -> None:
    flag = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, flag.set)

    async def check() -> bool:
        return flag.is_set()

    await eventually(check, "the flag")


async def test_it_fails_with_what_was_awaited() -> None:
    with pytest.raises(AssertionError, match=r"not true within 0\.1 s: never, after 0 tries"):
        await eventually(lambda: False, lambda: "never, after 0 tries", within_s=0.1)
