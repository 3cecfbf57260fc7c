"""Child processes for the network tests: output kept line by line, JSON lines as events,
waits with deadlines (never "sleep long enough"), and a stop that always ends them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.spawn import PIPE, STDOUT, Child, spawn

ROOT = Path(__file__).resolve().parents[3]
Event = dict[str, Any]


class Proc:
    def __init__(self, name: str, process: Child) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        process = await spawn(
            argv,
            stdin=PIPE,
            stdout=PIPE,
            stderr=STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        return cls(name, process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.lines.append(text)
                if text.startswith("{"):
                    with contextlib.suppress(ValueError):
                        self.events.append(json.loads(text))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()  # waiters see the end

    def tail(self, lines: int = 60) -> str:
        return f"--- {self.name} (exit {self.process.returncode}) ---\n" + "\n".join(
            self.lines[-lines:]
        )

    async def wait_line(self, contains: str, timeout: float) -> str:
        found = await self._wait(
            lambda: next((x for x in self.lines if contains in x), None),
            timeout,
            f"a line with {contains!r}",
        )
        assert isinstance(found, str)
        return found

    async def event(
        self, kind: str, timeout: float, where: Callable[[Event], bool] = lambda _: True
    ) -> Event:
        """The first event ``kind`` (already received or to come) that satisfies ``where``."""
        found = await self._wait(
            lambda: next((e for e in self.events if e.get("event") == kind and where(e)), None),
            timeout,
            f"event {kind!r}",
        )
        assert isinstance(found, dict)
        return found

    def events_of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == kind]

    async def _wait(self, find: Callable[[], object], timeout: float, what: str) -> object:
        async def until() -> object:
            async with self._changed:
                while True:
                    found = find()
                    if found is not None:
                        return found
                    if self._reader.done():
                        raise AssertionError(f"{self.name} ended before {what}\n{self.tail()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name}: no {what} in {timeout}s\n{self.tail()}") from None

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()

    async def exited(self, timeout: float) -> int:
        """The exit code, once it ends by itself (killed past ``timeout``)."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.stop(timeout=1)
            raise AssertionError(
                f"{self.name} still running after {timeout}s\n{self.tail()}"
            ) from None
        await self.stop()
        return self.process.returncode

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL past ``timeout``; returns the exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)
        return self.process.returncode
