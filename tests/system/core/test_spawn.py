"""core.spawn: child processes that start even where uvloop's spawn deadlocks, and behave as
the asyncio processes they replace (exit status, signals, pipes, env, cwd, umask, dying with
their parent)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.spawn import PIPE, Child, spawn
from loadtest.processes import gone
from tests.system.web.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[3]
WITHIN_S = 60.0  # another process's work, on a busy machine

# What hung the suite: a thread that used a PyAV reformatter (swscale slice threads), then a
# child started under uvloop. uvloop ran CPython's after-fork handlers in the child, which
# freed that thread's state: pthread_cond_destroy waited forever for the slice threads, and
# the parent waited in C for the child's exec. Run in a process of its own, so a regression
# fails here (its deadline) instead of hanging the suite.
_AFTER_PYAV_IN_A_THREAD = """
import asyncio
import av, numpy as np, uvloop
from core.spawn import spawn

def reformat():
    frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="rgb24")
    frame.reformat(format="yuv420p", width=160, height=120).to_ndarray()

async def main():
    await asyncio.to_thread(reformat)  # the executor's thread keeps PyAV's reformatter
    for _ in range(3):
        child = await spawn(["true"])
        assert await child.wait() == 0
    print("spawned", flush=True)

uvloop.run(main())
"""


def test_children_start_after_pyav_ran_in_other_threads() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _AFTER_PYAV_IN_A_THREAD],
        cwd=ROOT,
        capture_output=True,
        timeout=WITHIN_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"spawned\n"


# The same hazard from a child we do not start: Playwright's driver, under uvloop. The suite's
# guard (tests/pyav_threads.py) keeps PyAV from caching a reformatter in the thread.
_PLAYWRIGHT_AFTER_PYAV_IN_A_THREAD = """
import asyncio, sys
import av, numpy as np, uvloop
from playwright.async_api import async_playwright
from tests.pyav_threads import keep_no_reformatters

def reformat():
    frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="rgb24")
    frame.reformat(format="yuv420p", width=160, height=120).to_ndarray()

async def main():
    await asyncio.to_thread(reformat)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=sys.argv[1], args=sys.argv[2:])
        await browser.close()
    print("launched", flush=True)

keep_no_reformatters()
uvloop.run(main())
"""


def test_playwright_starts_after_pyav_ran_in_other_threads() -> None:
    argv = [sys.executable, "-c", _PLAYWRIGHT_AFTER_PYAV_IN_A_THREAD, CHROMIUM, *CHROMIUM_ARGS]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"launched\n"


async def test_exit_status_signals_and_a_second_signal_after_exit() -> None:
    ok = await spawn([sys.executable, "-c", "raise SystemExit(3)"])
    assert await ok.wait() == 3
    assert ok.returncode == 3
    ok.kill()  # exited: nothing is signalled (its pid may belong to another process now)
    assert await ok.wait() == 3

    sleeper = await spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    assert sleeper.returncode is None
    sleeper.terminate()
    assert await asyncio.wait_for(sleeper.wait(), WITHIN_S) == -signal.SIGTERM
    assert sleeper.returncode == -signal.SIGTERM


async def test_pipes_env_and_cwd(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "print(os.environ['SPAWN_TEST'], os.getcwd(), flush=True)\n"
        "for line in sys.stdin: print(line.strip().upper(), flush=True)\n"
    )
    child = await spawn(
        [sys.executable, "-c", code], env={**os.environ, "SPAWN_TEST": "given"}, cwd=tmp_path,
        stdin=PIPE, stdout=PIPE,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    first = await asyncio.wait_for(child.stdout.readline(), WITHIN_S)
    assert first.decode().split() == ["given", str(tmp_path)]
    child.stdin.write(b"hello\n")
    await child.stdin.drain()
    assert await asyncio.wait_for(child.stdout.readline(), WITHIN_S) == b"HELLO\n"
    child.stdin.close()
    assert await asyncio.wait_for(child.wait(), WITHIN_S) == 0
    assert await child.stdout.read() == b""


async def test_umask_is_the_childs(tmp_path: Path) -> None:
    made = tmp_path / "made"
    child = await spawn([sys.executable, "-c", f"open({str(made)!r}, 'w').close()"], umask=0o077)
    assert await child.wait() == 0
    assert made.stat().st_mode & 0o777 == 0o600


async def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    """The middle process spawns a sleeper that dies with it, prints its pid, and exits."""
    code = (
        "import asyncio, sys\n"
        "from core.spawn import spawn\n"
        "async def main():\n"
        "    child = await spawn([sys.executable, '-c', 'import time; time.sleep(600)'],\n"
        "                        die_with_parent=True)\n"
        "    print(child.pid, flush=True)\n"
        "asyncio.run(main())\n"
    )
    middle = await spawn([sys.executable, "-c", code], cwd=ROOT, stdout=PIPE)
    assert middle.stdout is not None
    pid = int(await asyncio.wait_for(middle.stdout.readline(), WITHIN_S))
    assert await asyncio.wait_for(middle.wait(), WITHIN_S) == 0
    await eventually(lambda: gone(pid), "the orphan was killed", within_s=WITHIN_S)


async def test_without_a_pidfd_a_thread_waits() -> None:
    popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(5)"])  # noqa: ASYNC220
    child = Child(popen, None, None, use_pidfd=False)
    assert await asyncio.wait_for(child.wait(), WITHIN_S) == 5


async def test_bad_commands_fail_at_once() -> None:
    with pytest.raises(ValueError):
        await spawn([])
    with pytest.raises(FileNotFoundError):
        await spawn(["/nonexistent/command"])
