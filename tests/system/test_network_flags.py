"""``serve``'s network flags are checked before anything starts (PROTOCOL.md v1.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from visitation.worker import parse_cli

CALLS_25 = ("--max-calls-per-worker", "25")  # a limit the operator set is checked, not lowered


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "visitation.cli", "serve", "--data-dir", str(tmp_path), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rtc-ports", "40000-40049", "--workers", "2", *CALLS_25], "need 200"),
        (
            [
                *CALLS_25,
                "--rtc-ports",
                "40000-40099",
                "--workers",
                "1",
                "--turn-url",
                "turn:t:3478",
                "--turn-secret",
                "s",
            ],
            "need 200",
        ),
        (["--rtc-ports", "4x-5"], "bad port range"),
        (["--turn-url", "turn:t:3478"], "needs --turn-secret"),
        (["--stun-url", "http://t"], "bad STUN/TURN URL"),
        (["--announce-ip", "not-an-ip"], "does not appear to be an IPv4 or IPv6 address"),
    ],
)
def test_serve_refuses_network_settings_that_cannot_work(
    tmp_path: Path, args: list[str], says: str
) -> None:
    done = serve(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr


def test_the_default_limit_is_lowered_to_what_the_ports_hold() -> None:
    """An operator who sized --rtc-ports for fewer calls than the default keeps a node that
    starts: the default is lowered to what the range holds (here 100 ports, TURN: 8 a call)."""
    from core.config import Settings
    from media.admission import DEFAULT_MAX_CALLS
    from visitation.cli import _parser, _settings

    def settings(*argv: str) -> Settings:
        return _settings(_parser().parse_args(["serve", *argv]))

    turn = ["--turn-url", "turn:t:3478", "--turn-secret", "s", "--workers", "1"]
    assert settings("--workers", "1").max_calls_per_worker == DEFAULT_MAX_CALLS
    assert settings("--rtc-ports", "40000-40099", *turn).max_calls_per_worker == 12
    assert settings("--rtc-ports", "40000-49999", *turn).max_calls_per_worker == DEFAULT_MAX_CALLS
    assert settings("--rtc-ports", "40000-40099", *turn, *CALLS_25).max_calls_per_worker == 25
    assert parse_cli(["--redis-url", "redis://x", "--rtc-ports", "41000-41039"]).max_calls == 10
    assert parse_cli(["--redis-url", "redis://x"]).max_calls == DEFAULT_MAX_CALLS


def test_a_worker_gets_its_share_and_its_own_check() -> None:
    args = parse_cli(
        ["--redis-url", "redis://x", "--rtc-ports", "41000-41099", "--max-calls", "25"]
    )
    assert str(args.network.ports) == "41000-41099"
    with pytest.raises(SystemExit):
        parse_cli(["--redis-url", "redis://x", "--rtc-ports", "41000-41049", "--max-calls", "25"])


def test_serve_gives_each_worker_its_share_and_the_network_flags() -> None:
    from core.config import Settings
    from core.ports import PortRange
    from visitation.serve import port_shares, worker_network_args

    settings = Settings(
        workers=2,
        rtc_ports=PortRange(40000, 40199),
        announce_ip="198.51.100.7",
        stun_urls=["stun:s:3478"],
        turn_urls=["turn:t:3478"],
        turn_secret="never-in-argv",
    )
    shares = port_shares(settings)
    assert shares is not None
    assert [shares(n) for n in (0, 1)] == [
        ["--rtc-ports", "40000-40099"],
        ["--rtc-ports", "40100-40199"],
    ]
    args = worker_network_args(settings)
    assert args == [
        "--announce-ip",
        "198.51.100.7",
        "--ice-server",
        "stun:s:3478",
        "--ice-server",
        "turn:t:3478",
    ]
    assert "never-in-argv" not in " ".join(args)
