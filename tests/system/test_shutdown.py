"""``visitation serve`` as a process: an idle one exits within 10 s of SIGINT; a second one on a
data dir in use exits non-zero within 5 s, naming the first one's pid, while the other commands
keep using the running server's Redis; its embedded Redis killed comes back once (same port,
password, AOF), and a serve whose embedded Redis cannot come back (its AOF damaged) exits
non-zero; with an
external Redis lost beyond the budget, ``/healthz`` answers 503 and says for how long.

Process-level: every wait has a deadline with a generous margin; nothing sleeps.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.embedded_redis import EmbeddedRedis
from loadtest.processes import ServeProcess
from tests.system.test_seed import run_cli
from tests.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def serves() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for serve in started:
        serve.kill()
    for serve in started:  # a Redis a killed serve left running
        embedded = EmbeddedRedis(serve.data_dir)
        embedded.owned = embedded.pid is not None
        embedded.stop()


def until(check: Callable[[], bool], what: str, within_s: float) -> None:
    eventually_sync(check, what, within_s=within_s)


def test_an_idle_serve_exits_within_10_s_of_sigint(
    serves: list[ServeProcess], tmp_path: Path
) -> None:
    serve = ServeProcess(tmp_path / "var", "--workers", "1")
    serves.append(serve)
    serve.wait_ready()
    status, body = serve.healthz()
    assert status == 200 and body["ok"] is True, body
    redis_pid = EmbeddedRedis(serve.data_dir).pid
    assert redis_pid is not None
    signalled = time.monotonic()
    serve.proc.send_signal(signal.SIGINT)
    assert serve.wait_exit(30) == 0, serve.output
    took = time.monotonic() - signalled
    assert took < 10, f"exited {took:.1f} s after SIGINT:\n{serve.output}"
    assert EmbeddedRedis(serve.data_dir).pid is None  # its Redis stopped too
    assert not (serve.data_dir / "redis" / "redis.url").exists()


def test_a_second_serve_on_a_data_dir_in_use_refuses_naming_the_pid(
    serves: list[ServeProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    first = ServeProcess(data_dir, "--workers", "0")
    serves.append(first)
    first.wait_ready()
    second = ServeProcess(data_dir, "--workers", "0")
    serves.append(second)
    code = second.wait_exit(30)
    took = time.monotonic() - second.started
    assert code != 0
    assert f"data dir {data_dir} in use by pid {first.proc.pid}" in second.output, second.output
    assert took < 5, f"refused after {took:.1f} s"
    # The first one is untouched, and the commands still use its embedded Redis.
    assert first.proc.poll() is None and first.healthz()[1]["redis"] is True
    revoked = run_cli("revoke", "family", "F1", "--data-dir", str(data_dir))
    assert revoked.returncode == 0, revoked.stderr
    assert first.proc.poll() is None and first.healthz()[1]["redis"] is True
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0
    # Free again: a serve starts there.
    third = ServeProcess(data_dir, "--workers", "0")
    serves.append(third)
    third.wait_ready()


def test_a_killed_embedded_redis_is_restarted_once_on_its_port(
    serves: list[ServeProcess], tmp_path: Path
) -> None:
    serve = ServeProcess(tmp_path / "var", "--workers", "0", "--demo")
    serves.append(serve)
    serve.wait_ready()
    embedded = EmbeddedRedis(serve.data_dir)
    url, pid = (serve.data_dir / "redis" / "redis.url").read_text(), embedded.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    until(lambda: embedded.pid not in (None, pid), "the embedded redis running again", 30)
    assert (serve.data_dir / "redis" / "redis.url").read_text() == url  # same port, password
    until(lambda: serve.healthz()[1]["redis"] is True, "healthz: redis back", 30)
    # Its AOF came back with it: the demo's families are still there.
    revoked = run_cli("revoke", "family", "F200", "--data-dir", str(serve.data_dir))
    assert revoked.returncode == 0, revoked.stderr
    assert serve.proc.poll() is None
    assert "embedded redis restarted on the same port" in serve.output


def test_a_serve_whose_embedded_redis_cannot_come_back_exits_non_zero(
    serves: list[ServeProcess], tmp_path: Path
) -> None:
    """Its AOF damaged, then the Redis killed: the one restart fails (Redis refuses to load
    that file), and serve exits non-zero, saying why, for its supervisor to act."""
    serve = ServeProcess(tmp_path / "var", "--workers", "0")
    serves.append(serve)
    serve.wait_ready()
    pid = EmbeddedRedis(serve.data_dir).pid
    assert pid is not None
    aof = serve.data_dir / "redis" / "appendonly.aof"
    aof.write_bytes(b"*3\r\n$3\r\nSET\r\nnot a redis command stream\r\n" * 3)
    os.kill(pid, signal.SIGKILL)
    code = serve.wait_exit(90)
    assert code != 0, serve.output
    assert "embedded redis lost" in serve.output and "could not be restarted" in serve.output
    assert "shutdown still not done" not in serve.output  # ended within its bounds


def test_healthz_says_how_long_an_external_redis_has_been_unreachable(
    serves: list[ServeProcess], tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    try:
        serve = ServeProcess(tmp_path / "var", "--workers", "0", "--redis-url", url)
        serves.append(serve)
        serve.wait_ready()
        redis.stop()

        def unreachable() -> bool:
            status, body = serve.healthz()
            reason = str(body.get("reason", ""))
            return (
                status == 503 and re.fullmatch(r"redis unreachable for \d+ s", reason) is not None
            )

        until(unreachable, "healthz: 503, redis unreachable for N s", 60)
        assert serve.healthz()[1]["redis"] is False
        assert serve.proc.poll() is None  # not its own Redis: it waits for it
        redis.restart()
        until(lambda: serve.healthz()[1]["redis"] is True, "healthz: redis back", 30)
    finally:
        redis.owned = redis.pid is not None
        redis.stop()


def test_the_data_dir_lock_names_its_holder_and_is_shared_by_external_redis_nodes(
    tmp_path: Path,
) -> None:
    """Exclusive for the embedded Redis's owner, shared by nodes of an external Redis (they
    may share a data dir); a short command holding it is waited for, a serve is not."""
    from core.data_dir_lock import DataDirInUse, DataDirLock

    owner = DataDirLock(tmp_path)
    owner.acquire()
    try:
        with pytest.raises(DataDirInUse, match=f"in use by pid {os.getpid()} \\(serve\\)"):
            DataDirLock(tmp_path).acquire(wait_s=30)  # a serve holds it: no wait
        assert not DataDirLock(tmp_path).try_acquire(shared=True)
    finally:
        owner.release()
    nodes = [DataDirLock(tmp_path), DataDirLock(tmp_path)]
    for node in nodes:
        node.acquire(shared=True)
    assert not DataDirLock(tmp_path).try_acquire()
    for node in nodes:
        node.release()
    command = DataDirLock(tmp_path, what="seed")
    command.acquire()
    started = time.monotonic()
    with pytest.raises(DataDirInUse, match=r"\(seed\)"):
        DataDirLock(tmp_path).acquire(wait_s=0.3)
    assert time.monotonic() - started >= 0.3  # a command's lock is waited for
    command.release()
    assert DataDirLock(tmp_path).try_acquire()
