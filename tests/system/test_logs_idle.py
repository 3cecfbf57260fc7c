"""The idle-socket measurement (``make bench-idle``) runs, tiny: real serves, real sockets
answering pings, a table with CPU and memory per 1,000 sockets for each log setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_the_idle_socket_measurement_runs_tiny(tmp_path: Path) -> None:
    out = tmp_path / "idle.json"
    argv = ["--sockets", "20", "--seconds", "1", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.idle_sockets", *argv],
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout
    assert "idle family sockets: 20 on one node" in table
    assert "CPU %/1000" in table and "MB/1000" in table
    for label in ("default (INFO)", "WARNING", "INFO + packets"):
        assert any(line.startswith(label) for line in table.splitlines()), table
    assert "the WARNING figure" in table
    runs = json.loads(out.read_text())
    assert [run["mode"] for run in runs] == ["default", "warning", "packets"]
    for run in runs:
        assert run["sockets"] == 20 and run["window_s"] >= 1
        assert run["cpu_pct"] >= 0 and run["rss_after_mb"] > 0
