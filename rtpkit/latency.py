"""A cheap log-bucketed delay histogram (the SFU's added forwarding delay) and its summaries.

Buckets are ``PER_DECADE`` per power of ten from ``MIN_S`` (1 µs) to 100 s, so each is ~6 %
wide; :meth:`DelayHistogram.record` costs one ``log10``. Snapshots are JSON-ready (sparse
``{bucket: count}``), can be subtracted (:func:`diff`) to get a steady window, merged
(:func:`merge`) across calls, and summarized (:func:`summarize`); a percentile is reported as
its bucket's upper edge, i.e. rounded up by at most one bucket width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

MIN_S: Final = 1e-6
PER_DECADE: Final = 40
BUCKETS: Final = 8 * PER_DECADE + 1  # 1 µs .. 100 s, then one overflow bucket

Counts = dict[int, int]


def bucket_of(delay_s: float) -> int:
    if delay_s <= MIN_S:
        return 0
    return min(BUCKETS, math.ceil(math.log10(delay_s / MIN_S) * PER_DECADE))


def upper_edge_s(bucket: int) -> float:
    return float(MIN_S * 10 ** (bucket / PER_DECADE))


class DelayHistogram:
    """Counts delays (seconds) into log buckets; also keeps their count, sum and max."""

    __slots__ = ("count", "counts", "max_s", "sum_s")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * (BUCKETS + 1)
        self.count = 0
        self.sum_s = 0.0
        self.max_s = 0.0

    def record(self, delay_s: float) -> None:
        self.counts[bucket_of(delay_s)] += 1
        self.count += 1
        self.sum_s += delay_s
        if delay_s > self.max_s:
            self.max_s = delay_s

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: ``{"buckets": {index: count}, "count", "sum_s", "max_s"}``."""
        buckets = {i: n for i, n in enumerate(self.counts) if n}
        return {"buckets": buckets, "count": self.count, "sum_s": self.sum_s, "max_s": self.max_s}


def counts_of(snapshot: Mapping[str, Any]) -> Counts:
    """The bucket counts of a snapshot (keys come back as strings through JSON)."""
    return {int(k): int(v) for k, v in dict(snapshot.get("buckets") or {}).items()}


def diff(after: Mapping[str, Any], before: Mapping[str, Any] | None) -> Counts:
    """Bucket counts recorded between two snapshots of the same histogram."""
    later = counts_of(after)
    if before is None:
        return later
    earlier = counts_of(before)
    return {k: n - earlier.get(k, 0) for k, n in later.items() if n - earlier.get(k, 0) > 0}


def merge(parts: Iterable[Counts]) -> Counts:
    total: Counts = {}
    for part in parts:
        for k, n in part.items():
            total[k] = total.get(k, 0) + n
    return total


def percentile_s(counts: Counts, q: float) -> float | None:
    """Upper edge of the bucket holding the ``q`` quantile (0 < q <= 1); None if empty."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return upper_edge_s(bucket)
    return upper_edge_s(max(counts))  # unreachable


def summarize(counts: Counts) -> dict[str, float | int | None]:
    """``{"count", "p50_ms", "p95_ms", "p99_ms"}`` (milliseconds, None when empty)."""

    def ms(q: float) -> float | None:
        value = percentile_s(counts, q)
        return None if value is None else round(value * 1000, 3)

    return {
        "count": sum(counts.values()),
        "p50_ms": ms(0.5),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
    }
