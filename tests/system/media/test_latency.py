"""The forwarding-delay histogram: bucket resolution, window deltas, merging, percentiles."""

from __future__ import annotations

import json

from rtpkit.latency import DelayHistogram, diff, merge, percentile_s, summarize


def test_percentiles_are_rounded_up_by_at_most_one_bucket() -> None:
    hist = DelayHistogram()
    for ms in range(1, 101):  # 1..100 ms, one each
        hist.record(ms / 1000)
    counts = diff(json.loads(json.dumps(hist.snapshot())), None)  # survives JSON (string keys)
    p50, p95 = percentile_s(counts, 0.5), percentile_s(counts, 0.95)
    assert p50 is not None and 0.050 <= p50 <= 0.050 * 1.06
    assert p95 is not None and 0.095 <= p95 <= 0.095 * 1.06
    assert hist.count == 100 and abs(hist.max_s - 0.1) < 1e-9


def test_window_delta_and_merge() -> None:
    hist = DelayHistogram()
    hist.record(0.5)  # before the window
    before = hist.snapshot()
    for _ in range(99):
        hist.record(0.001)
    window = diff(hist.snapshot(), before)
    assert summarize(window)["count"] == 99
    assert summarize(window)["p95_ms"] is not None and summarize(window)["p95_ms"] < 1.1  # type: ignore[operator]
    other = DelayHistogram()
    other.record(0.0)  # below 1 us: first bucket
    merged = merge([window, diff(other.snapshot(), None)])
    assert sum(merged.values()) == 100
    assert summarize({})["p50_ms"] is None
