"""A smoke run of the transcription benchmark (:mod:`loadtest.transcribe_bench`): one call,
one real worker, the real engine; every figure it reports is there and sane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.transcribe_bench import main


def test_the_transcription_benchmark_runs_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--calls", "2", "--workers", "1", "--sentences", "1", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "audio/job-CPU s" in printed and "drain s" in printed
    [figures] = json.loads(out.read_text())["rounds"]
    assert figures["calls"] == 2 and figures["failed"] == 0
    assert figures["audio_s"] > 5  # both parties of both calls, a sentence each
    assert 0 < figures["job_cpu_s"] <= figures["process_cpu_s"] * 1.5
    assert figures["audio_per_job_cpu_s"] > 0 and figures["audio_per_wall_s"] > 0
    assert figures["peak_backlog"] >= 1
    assert 0 < figures["latency_median_s"] <= figures["drain_s"]
