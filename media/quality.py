"""Connection quality of each party, for people: round trip, jitter and loss from RTCP, graded.

Measured on the worker for each party (tablet, family), both directions of its network:

* **rtt_ms**: the round trip between this worker and the party, from the party's RTCP receiver
  reports about the streams we send it (RFC 3550 section 6.4.1): report arrival - when we sent
  the sender report it echoes (LSR) - the delay it says it held it (DLSR). Our sender reports
  carry NTP times mapped from the publisher's clock (lip sync), so each one's send time is
  remembered by its LSR value (:class:`SenderReports`) rather than read from the NTP time.
* **jitter_ms**: the larger of the interarrival jitter of what the party sends us (our receiver
  statistics, RFC 3550 A.8) and of what we send it (its receiver reports).
* **loss_pct**: the larger of the share of the party's packets that never reached us since the
  previous sample (before any retransmission repaired them) and the fraction lost it reports
  about our streams; smoothed over samples. No media from the party for
  :data:`MEDIA_GAP_S` counts as 100 % lost.

We forward at once, so what a party reports about a stream also carries what that stream's
source lost and jittered on its own way to us: only the excess over the source's own upstream
counts against the receiving party (the other party's bad network is not yours).

:data:`LEVELS` grades them; every bound of a level must hold (the worst measure decides):

======  ============  ==============  =============
level   rtt_ms        jitter_ms       loss_pct
======  ============  ==============  =============
good    < 300         < 30            < 2
fair    < 600         < 75            < 8
poor    otherwise (or no media for :data:`MEDIA_GAP_S`)
======  ============  ==============  =============

(ITU-T G.114 holds one-way delays under 150 ms good and under 400 ms acceptable for
conversation; video breaks up visibly from a few per cent loss; a jitter buffer hides tens of
milliseconds.) ``unknown``: nothing measured yet (the party sent nothing and reported nothing).

A :class:`RoomQuality` samples a room's parties every :data:`SAMPLE_S` on the room's watchdog
(no work on the packet path beyond :meth:`SenderReports.received` per RTCP report) and calls its
``on_report`` when a party's level changes, and every :data:`REFRESH_S` otherwise; the worker
turns that into a ``quality`` event for the signaling tier (``call.quality`` to people).
:data:`TOTALS` accumulates every sample of this process for ``/metrics``
(:func:`metric_families`; no label names a call).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric

from media.control import Party

if TYPE_CHECKING:
    from media.forwarding import Publisher
    from rtpkit.endpoints import ForwardingReceiver, ForwardingSender

Level = Literal["good", "fair", "poor", "unknown"]
#: Upper bounds (exclusive) of (rtt_ms, jitter_ms, loss_pct) for each level, best first.
LEVELS: Final[tuple[tuple[Level, tuple[float, float, float]], ...]] = (
    ("good", (300.0, 30.0, 2.0)),
    ("fair", (600.0, 75.0, 8.0)),
)
SAMPLE_S: Final = 2.0
REFRESH_S: Final = 10.0
MEDIA_GAP_S: Final = 3.0
REPORT_MAX_AGE_S: Final = 10.0  # a receiver report older than this no longer counts
LOSS_SMOOTHING: Final = 0.5  # weight of the newest sample's loss


def grade(rtt_ms: float | None, jitter_ms: float | None, loss_pct: float | None) -> Level:
    """The best level whose every bound holds for the measures known."""
    measures = [(v, i) for i, v in enumerate((rtt_ms, jitter_ms, loss_pct)) if v is not None]
    if not measures:
        return "unknown"
    for level, bounds in LEVELS:
        if all(value < bounds[i] for value, i in measures):
            return level
    return "poor"


@dataclass(frozen=True)
class PartyQuality:
    level: Level = "unknown"
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "rtt_ms": _round(self.rtt_ms),
            "jitter_ms": _round(self.jitter_ms),
            "loss_pct": _round(self.loss_pct),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class _Slot(Protocol):
    @property
    def sender(self) -> ForwardingSender: ...

    @property
    def source(self) -> Party: ...

    @property
    def kind(self) -> str: ...


class PartyLinks(Protocol):
    """What :class:`RoomQuality` reads of a party (a :class:`media.room.Room` leg)."""

    @property
    def publishers(self) -> Mapping[str, Publisher]: ...

    @property
    def slots(self) -> Iterable[_Slot]: ...

    @property
    def last_media_at(self) -> float | None: ...


@dataclass(frozen=True)
class _Upstream:
    """One kind of media from a party to us over the last sample interval."""

    loss: float | None = None  # share of packets lost (before any retransmission)
    jitter_s: float | None = None


_NOTHING: Final = _Upstream()


def _streams(receiver: ForwardingReceiver) -> Iterator[tuple[int, int, int, float]]:
    """(ssrc, packets expected, packets received, jitter in s) of each media stream (not RTX)
    that ``receiver`` gets; aiortc's ``StreamStatistics`` (read, never reset)."""
    rtx = receiver._rtx_ssrc
    for ssrc, stats in tuple(receiver._streams.items()):
        if ssrc not in rtx and stats.max_seq is not None:
            jitter_s = stats.jitter / stats._clockrate
            yield ssrc, stats.packets_expected, stats.packets_received, jitter_s


class _PartyEstimator:
    def __init__(self) -> None:
        self._prior: dict[tuple[int, int], tuple[int, int]] = {}
        self._loss: float | None = None
        self.upstream: dict[str, _Upstream] = {}

    def sample_upstream(self, links: PartyLinks) -> None:
        """What the party sends us, per kind, since the previous sample."""
        prior: dict[tuple[int, int], tuple[int, int]] = {}
        upstream: dict[str, _Upstream] = {}
        for kind, publisher in links.publishers.items():
            expected = lost = 0
            jitters: list[float] = []
            for ssrc, exp, got, jitter_s in _streams(publisher.receiver):
                key = (id(publisher.receiver), ssrc)
                prior[key] = (exp, got)
                jitters.append(jitter_s)
                before = self._prior.get(key)
                if before is not None:
                    expected += exp - before[0]
                    lost += max(0, (exp - before[0]) - (got - before[1]))
            loss = lost / expected if expected > 0 else None
            upstream[kind] = _Upstream(loss, max(jitters) if jitters else None)
        self._prior, self.upstream = prior, upstream

    def sample(
        self, links: PartyLinks, sources: Mapping[Party, _PartyEstimator], now: float
    ) -> PartyQuality:
        """Both directions. What the party reports about our streams includes what the
        stream's source lost or jittered on its own way to us (we forward at once): only the
        excess counts against this party."""
        losses = [u.loss for u in self.upstream.values() if u.loss is not None]
        jitters = [u.jitter_s for u in self.upstream.values() if u.jitter_s is not None]
        rtts: list[float] = []
        for slot in links.slots:
            reports = slot.sender.reports
            if reports.received_at is None or now - reports.received_at > REPORT_MAX_AGE_S:
                continue
            source = sources.get(slot.source)
            before = source.upstream.get(slot.kind, _NOTHING) if source else _NOTHING
            if reports.rtt_s is not None:
                rtts.append(reports.rtt_s)
            if reports.jitter_s is not None:
                jitters.append(max(0.0, reports.jitter_s - (before.jitter_s or 0.0)))
            if reports.fraction_lost is not None:
                losses.append(max(0.0, reports.fraction_lost - (before.loss or 0.0)))
        last = links.last_media_at
        if last is not None and now - last > MEDIA_GAP_S:
            losses = [1.0]
            self._loss = None  # no smoothing: a gap is news now
        if losses:
            newest = max(losses)
            old = self._loss
            self._loss = newest if old is None else old + (newest - old) * LOSS_SMOOTHING
        loss_pct = None if self._loss is None else 100 * self._loss
        rtt_ms = 1000 * sum(rtts) / len(rtts) if rtts else None
        jitter_ms = 1000 * max(jitters) if jitters else None
        return PartyQuality(grade(rtt_ms, jitter_ms, loss_pct), rtt_ms, jitter_ms, loss_pct)


class RoomQuality:
    """The quality of one room's parties, sampled by :meth:`tick` (see the module docstring)."""

    def __init__(
        self,
        on_report: Callable[[], None],
        *,
        sample_s: float = SAMPLE_S,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._on_report = on_report
        self.sample_s = sample_s
        self.refresh_s = refresh_s
        self._estimators: dict[Party, _PartyEstimator] = {}
        self.current: dict[Party, PartyQuality] = {}
        self._sampled_at = -float("inf")
        self._reported: dict[Party, Level] = {}
        self._reported_at = -float("inf")

    def tick(self, parties: Mapping[Party, PartyLinks], now: float | None = None) -> None:
        """Sample if :attr:`sample_s` has passed; report a change of level or a refresh."""
        now = time.monotonic() if now is None else now
        if now - self._sampled_at < self.sample_s:
            return
        self._sampled_at = now
        for party, links in parties.items():
            self._estimators.setdefault(party, _PartyEstimator()).sample_upstream(links)
        for party, links in parties.items():
            quality = self._estimators[party].sample(links, self._estimators, now)
            self.current[party] = quality
            TOTALS.observe(quality)
        levels = {party: q.level for party, q in self.current.items()}
        if all(level == "unknown" for level in levels.values()):
            return
        if levels != self._reported or now - self._reported_at >= self.refresh_s:
            self._reported, self._reported_at = levels, now
            self._on_report()

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Each party's latest quality (``call.quality``'s ``tablet`` and ``family``)."""
        return {party: quality.as_dict() for party, quality in self.current.items()}


# ------------------------------------------------------------------------- /metrics

RTT_BUCKETS_S: Final = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 1.0, 2.0)
JITTER_BUCKETS_S: Final = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2)
LOSS_BUCKETS: Final = (0.005, 0.01, 0.02, 0.05, 0.08, 0.15, 0.3, 1.0)


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        counts = self.counts or [0] * (len(self.bounds) + 1)
        cumulative, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        return out


@dataclass(frozen=True)
class QualitySnapshot:
    """What :func:`metric_families` formats (taken on the event loop)."""

    levels: Mapping[str, int] = field(default_factory=dict)  # parties now at each level
    histograms: Mapping[str, tuple[list[tuple[str, float]], float]] = field(default_factory=dict)


class QualityTotals:
    """Every party-quality sample of this process, as histograms."""

    def __init__(self) -> None:
        self.rtt = _Histogram(RTT_BUCKETS_S)
        self.jitter = _Histogram(JITTER_BUCKETS_S)
        self.loss = _Histogram(LOSS_BUCKETS)

    def observe(self, quality: PartyQuality) -> None:
        if quality.rtt_ms is not None:
            self.rtt.observe(quality.rtt_ms / 1000)
        if quality.jitter_ms is not None:
            self.jitter.observe(quality.jitter_ms / 1000)
        if quality.loss_pct is not None:
            self.loss.observe(quality.loss_pct / 100)

    def snapshot(self, rooms: Iterable[RoomQuality]) -> QualitySnapshot:
        levels = dict.fromkeys(("good", "fair", "poor", "unknown"), 0)
        for room in rooms:
            for quality in room.current.values():
                levels[quality.level] += 1
        histograms = {
            name: (h.buckets(), h.total)
            for name, h in (("rtt", self.rtt), ("jitter", self.jitter), ("loss", self.loss))
        }
        return QualitySnapshot(levels, histograms)


TOTALS: Final = QualityTotals()

_HISTOGRAMS: Final = (
    ("rtt", "visitation_sfu_party_rtt_seconds", "Round trip between the worker and a party"),
    ("jitter", "visitation_sfu_party_jitter_seconds", "Interarrival jitter, worse direction"),
    ("loss", "visitation_sfu_party_loss_ratio", "Share of packets lost, worse direction"),
)


def metric_families(snapshot: QualitySnapshot, worker_id: str) -> Iterator[Metric]:
    """Parties per quality level now, and a histogram of every sample of each measure."""
    parties = GaugeMetricFamily(
        "visitation_sfu_parties_by_quality",
        "Parties in calls on this worker by connection quality (media.quality.LEVELS)",
        labels=["worker", "quality"],
    )
    for level, count in snapshot.levels.items():
        parties.add_metric([worker_id, level], count)
    yield parties
    for key, name, doc in _HISTOGRAMS:
        if key in snapshot.histograms:
            buckets, total = snapshot.histograms[key]
            family = HistogramMetricFamily(
                name, f"{doc} (one sample per party every {SAMPLE_S:g} s)", labels=["worker"]
            )
            family.add_metric([worker_id], buckets, total)
            yield family
