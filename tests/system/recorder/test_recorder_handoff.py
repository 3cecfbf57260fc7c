"""The recorder hand-off benchmark (loadtest.recorder_handoff): a smoke run of its three
variants over real recordings, no timing asserted (speed is the benchmark's to print)."""

from __future__ import annotations

from loadtest.recorder_handoff import VARIANTS, measure, report


async def test_both_recorders_record_every_call_and_are_reported() -> None:
    results = await measure(calls=2, seconds=3.0, rounds=1)
    assert list(results) == list(VARIANTS)
    baseline, threads, loop = (results[v][0] for v in VARIANTS)
    assert baseline.frames == 0
    # Both record the two calls' four tracks: 3 s of 2 x (30 video + 50 audio) frames, less
    # what comes before the tap's start (both parties heard, then each video's key frame).
    assert threads.frames == 2 * 3 * 2 * (30 + 50)
    assert 0.5 * threads.frames < loop.frames <= threads.frames
    printed = report(results)
    assert "tap on the loop / thread per call:" in printed and "| thread per call |" in printed
