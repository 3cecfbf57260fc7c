"""``visitation device`` and ``visitation staff-password``, run as the operator runs them."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from accounts.credentials import Credentials
from accounts.passwords import SecretHasher
from core.domain import SeedFile
from core.tokens import Tokens
from tests.conftest import Node
from tests.system.test_seed import run_cli

PASSWORD = "a long staff pass phrase 7"
ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "visitation.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_device_prints_a_long_lived_device_token(
    node: Node, tokens: Tokens, redis_url: str, redis: Redis
) -> None:
    await redis.set("pin:R1", await SecretHasher().hash("2468"))
    result = run_cli("device", "SQ", "--redis-url", redis_url)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = tokens.verify(token)
    assert (claims.role, claims.subject) == ("device", "SQ")
    assert claims.expires_at > time.time() + 364 * 86400
    body = {"resident_id": "R1", "pin": "2468"}
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=node.url) as http:
        async with http.post("/api/v1/tablet/login", json=body, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["subject"] == "R1"
        revoked = run_cli("revoke", "device", "SQ", "--redis-url", redis_url)
        assert revoked.returncode == 0, revoked.stderr
        async with http.post("/api/v1/tablet/login", json=body, headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["error"]["message"] == "token revoked"


async def test_device_needs_a_facility(seeded: SeedFile, redis_url: str) -> None:
    result = run_cli("device", "NOWHERE", "--redis-url", redis_url)
    assert result.returncode == 2 and "no facility 'NOWHERE'" in result.stderr
    assert result.stdout == ""
    result = run_cli("device", "SQ", "--ttl", "0", "--redis-url", redis_url)
    assert result.returncode == 2


async def test_staff_password_from_stdin(seeded: SeedFile, redis_url: str, redis: Redis) -> None:
    credentials = Credentials(redis, SecretHasher())
    result = cli("staff-password", "S1", "--redis-url", redis_url, stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "password set for S1" in result.stdout and PASSWORD not in result.stdout
    stored = await credentials.staff_password_hash("S1")
    assert stored is not None and await SecretHasher().verify(stored, PASSWORD)
    for staff_id, given, why in [
        ("S1", "short\n", "at least 10"),
        ("S1", "password123\n", "common"),
        ("S1", "", "at least 10"),
        ("NOPE", PASSWORD + "\n", "no staff member 'NOPE'"),
    ]:
        result = cli("staff-password", staff_id, "--redis-url", redis_url, stdin=given)
        assert result.returncode == 2 and why in result.stderr, (staff_id, result.stderr)
        assert "nothing was changed" in result.stderr
    assert await credentials.staff_password_hash("S1") == stored
    assert await credentials.staff_password_hash("NOPE") is None


def _on_a_terminal(args: list[str], typed: list[str]) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling tty; type ``typed`` at prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "visitation.cli", *args])
    output = b""
    answers = list(typed)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if answers and output.endswith(b": "):  # a prompt (getpass turned echo off first)
                os.write(fd, (answers.pop(0) + "\n").encode())
    done, status = os.waitpid(pid, os.WNOHANG)
    while done == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # the child is exiting: it closed its terminal
        done, status = os.waitpid(pid, os.WNOHANG)
    os.close(fd)
    if done == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError(f"still running; the screen: {output!r}")
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


async def test_staff_password_on_a_terminal_does_not_echo(
    seeded: SeedFile, redis_url: str, redis: Redis
) -> None:
    code, screen = _on_a_terminal(
        ["staff-password", "S2", "--redis-url", redis_url], [PASSWORD, PASSWORD]
    )
    assert code == 0, screen
    assert "new password for S2:" in screen and "again:" in screen
    assert PASSWORD not in screen  # never echoed
    stored = await Credentials(redis, SecretHasher()).staff_password_hash("S2")
    assert stored is not None and await SecretHasher().verify(stored, PASSWORD)
    code, screen = _on_a_terminal(
        ["staff-password", "S2", "--redis-url", redis_url], [PASSWORD, PASSWORD + "x"]
    )
    assert code == 2 and "differ" in screen
