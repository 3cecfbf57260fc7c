"""The idle-socket measurement: what N idle family sockets cost one ``visitation serve``.

``python -m loadtest.idle_sockets [--sockets 2000] [--seconds 60] [--repeat 1]
[--modes default,warning,packets] [--json out.json]`` (``make bench-idle ARGS=...``)

For each log setting (side by side in the same run, in interleaved rounds when ``--repeat`` is
more than 1) it starts a real ``visitation serve`` (embedded Redis, no SFU worker and no
transcriber: only the signaling node's process is measured), opens ``--sockets`` family
sockets (one family each, through the real protocol: Engine.IO 4 over WebSocket, the Socket.IO
connect with the token in ``auth``, answering every ping), lets them idle, and reads the node
process's CPU time (``/proc/<pid>/stat``) over a window of at least two ping intervals, and its
resident memory before and after the sockets. It prints CPU (% of one core) and MB per 1,000
idle sockets, the log bytes written during the window, and each setting's ratio to WARNING.

The settings: ``default`` (what a facility runs: INFO, library loggers at WARNING),
``warning`` (``VISITATION_LOG_LEVEL=WARNING``) and ``packets`` (INFO with
``VISITATION_LOG_PACKETS=1``: every Engine.IO packet logged, as before issue 34).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from core.config import load_secret
from core.embedded_redis import _free_port
from core.tokens import Tokens

ROOT = Path(__file__).resolve().parents[1]
FACILITY = "IDLE"
MODES: dict[str, dict[str, str]] = {
    "default": {},
    "warning": {"VISITATION_LOG_LEVEL": "WARNING"},
    "packets": {"VISITATION_LOG_LEVEL": "INFO", "VISITATION_LOG_PACKETS": "1"},
}
LABELS = {
    "default": "default (INFO)",
    "warning": "WARNING",
    "packets": "INFO + packets",
}
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
CONNECTS_AT_ONCE = 64


@dataclass
class Run:
    mode: str
    sockets: int
    connect_s: float
    window_s: float
    ping_interval_s: float
    cpu_pct: float  # of one core, over the window
    rss_before_mb: float
    rss_after_mb: float
    log_bytes: int  # written during the window

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_pct * 1000 / self.sockets

    @property
    def mb_per_1000(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1000 / self.sockets


def seed(n: int) -> dict[str, Any]:
    always = [{"days": "mon-sun", "start": "00:00", "end": "24:00"}]
    return {
        "facilities": [
            {
                "id": FACILITY,
                "name": "Idle Facility",
                "timezone": "UTC",
                "type": "prison",
                "rate_cents_per_minute": 10,
                "max_call_seconds": 3600,
                "calling_hours": always,
            }
        ],
        "families": [
            {"id": f"F{i}", "name": f"Family {i}", "balance_cents": 1000, "verified": True}
            for i in range(n)
        ],
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "visitation.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


class IdleSocket:
    """One family's socket: Engine.IO 4 over WebSocket, connected to ``/``, answering pings."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token
        self.ping_interval_s = 25.0
        self.pings = 0
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        ws = await self.http.ws_connect(
            f"{self.url}/socket.io/?EIO=4&transport=websocket", autoping=False
        )
        self._ws = ws
        opened = await ws.receive_str(timeout=30)
        if not opened.startswith("0"):
            raise RuntimeError(f"no Engine.IO open packet: {opened[:80]!r}")
        self.ping_interval_s = json.loads(opened[1:])["pingInterval"] / 1000
        await ws.send_str("40" + json.dumps({"token": self.token}))
        while True:
            packet = await ws.receive_str(timeout=30)
            if packet.startswith("40"):
                break
            if packet.startswith("44"):
                raise RuntimeError(f"connect refused: {packet[:200]}")
            if packet == "2":
                await ws.send_str("3")
        self._task = asyncio.ensure_future(self._idle())

    async def _idle(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                self.pings += 1
                await self._ws.send_str("3")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ws is not None:
            await self._ws.close()


class Serve:
    """``visitation serve`` with one log setting; its output kept in a file (not a pipe)."""

    def __init__(self, data_dir: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "visitation.cli", "serve", "--port", str(self.port)),
                *("--data-dir", str(data_dir), "--workers", "0"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    async def ready(self, within_s: float = 90.0) -> None:
        deadline = time.monotonic() + within_s
        while "visitation serving on" not in self.log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{self.log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.1)

    def log_bytes(self) -> int:
        return self.log_path.stat().st_size

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


async def measure(
    mode: str, n: int, seconds: float, data_dir: Path, base_env: dict[str, str], work: Path
) -> Run:
    env = {**base_env, **MODES[mode]}
    tokens = Tokens(load_secret(data_dir))
    serve = Serve(data_dir, env, work / f"serve-{mode}.log")
    try:
        await serve.ready()
        pid = serve.proc.pid
        await asyncio.sleep(1.0)  # startup's own work (timers armed, first passes) settles
        rss_before = rss_mb(pid)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            sockets = [
                IdleSocket(http, serve.url, tokens.issue("family", f"F{i}")) for i in range(n)
            ]
            gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

            async def one(socket: IdleSocket) -> None:
                async with gate:
                    await socket.open()

            started = time.monotonic()
            try:
                await asyncio.gather(*(one(s) for s in sockets))
                connect_s = time.monotonic() - started
                ping_s = sockets[0].ping_interval_s
                window = max(seconds, 0.1)
                await asyncio.sleep(min(2.0, window))  # the connects' tail (presence writes)
                cpu0, wall0, log0 = cpu_seconds(pid), time.monotonic(), serve.log_bytes()
                await asyncio.sleep(window)
                cpu1, wall1, log1 = cpu_seconds(pid), time.monotonic(), serve.log_bytes()
                rss_after = rss_mb(pid)
            finally:
                await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        return Run(
            mode=mode,
            sockets=n,
            connect_s=round(connect_s, 2),
            window_s=round(wall1 - wall0, 2),
            ping_interval_s=ping_s,
            cpu_pct=100 * (cpu1 - cpu0) / (wall1 - wall0),
            rss_before_mb=rss_before,
            rss_after_mb=rss_after,
            log_bytes=log1 - log0,
        )
    finally:
        serve.stop()


def report(runs: list[Run], repeat: int) -> str:
    by_mode: dict[str, list[Run]] = {}
    for run in runs:
        by_mode.setdefault(run.mode, []).append(run)
    chosen = {
        mode: sorted(rs, key=lambda r: r.cpu_pct)[len(rs) // 2] for mode, rs in by_mode.items()
    }
    first = runs[0]
    lines = [
        f"idle family sockets: {first.sockets} on one node; window {first.window_s:.0f} s "
        f"(ping interval {first.ping_interval_s:g} s); {os.cpu_count()} cores; "
        f"median of {repeat} run(s) per setting; MB/1000 sockets = KB per socket",
        f"{'setting':<16} {'connect s':>9} {'CPU %':>7} {'CPU %/1000':>10} {'MB/1000':>8} "
        f"{'log KB/min':>10} {'CPU vs WARNING':>14}",
    ]
    base = chosen.get("warning")
    for mode, run in chosen.items():
        ratio = f"{run.cpu_pct / base.cpu_pct:.2f}x" if base and base.cpu_pct > 0 else "-"
        lines.append(
            f"{LABELS[mode]:<16} {run.connect_s:>9.1f} {run.cpu_pct:>7.2f} "
            f"{run.cpu_per_1000:>10.2f} {run.mb_per_1000:>8.1f} "
            f"{run.log_bytes / 1024 * 60 / run.window_s:>10.1f} {ratio:>14}"
        )
    default = chosen.get("default")
    if default is not None and base is not None:
        # Same figure within noise: the default may exceed WARNING by 10 % or 0.5 points.
        ok = default.cpu_pct <= max(base.cpu_pct * 1.10, base.cpu_pct + 0.5)
        lines.append(
            f"default costs {'at most' if ok else 'MORE than'} the WARNING figure "
            f"({default.cpu_pct:.2f} % vs {base.cpu_pct:.2f} % of a core)"
        )
    return "\n".join(lines)


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.idle_sockets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sockets", type=int, default=2000, help="idle sockets (default 2000)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="CPU window, >= 2 ping intervals (60)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument("--modes", default="default,warning,packets", help="settings to compare")
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    if args.sockets < 1 or args.repeat < 1:
        parser.error("--sockets and --repeat must be at least 1")
    return args


async def run(args: argparse.Namespace) -> list[Run]:
    with tempfile.TemporaryDirectory(prefix="visitation-idle-") as tmp:
        work = Path(tmp)
        data_dir = work / "var"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VISITATION_LOG")},
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": "",
            "VISITATION_TRANSCRIBERS": "0",
            # Every socket comes from this one address, at once.
            "VISITATION_RATE_LIMIT_CONNECT_ADDRESS": "1000000/minute",
            "VISITATION_RATE_LIMIT_HTTP_ADDRESS": "1000000/minute",
        }
        seed_path = work / "seed.json"
        seed_path.write_text(json.dumps(seed(args.sockets)))
        seeded = cli("seed", str(seed_path), "--data-dir", str(data_dir), env=env)
        if seeded.returncode != 0:
            raise RuntimeError(f"seed failed: {seeded.stderr}")
        runs = []
        for _ in range(args.repeat):
            for mode in args.modes:
                runs.append(await measure(mode, args.sockets, args.seconds, data_dir, env, work))
                print(f"  {LABELS[mode]}: {runs[-1].cpu_pct:.2f} % of a core", flush=True)
        return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    runs = asyncio.run(run(args))
    print(report(runs, args.repeat))
    if args.json is not None:
        rows = [
            {**asdict(r), "cpu_per_1000": r.cpu_per_1000, "mb_per_1000": r.mb_per_1000}
            for r in runs
        ]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
