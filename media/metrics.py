"""Metrics of one SFU worker process, published through Redis and served by the signaling nodes.

Workers may run on other machines than the nodes and expose no HTTP port of their own: the
worker's heartbeat thread (:class:`media.liveness.HeartbeatThread`) writes this process's
exposition text (Prometheus text format, :meth:`WorkerMetrics.exposition`) to
``sfu:metrics:{worker}`` every beat, with the alive key's TTL, and a node's ``GET /metrics``
merges the texts of the live workers into its own (:mod:`signaling.metrics`). A dead worker's
metrics vanish when its key expires; a worker that stops cleanly withdraws them at once.

Nothing is added to the per-packet path. The forwarding objects already count what matters
(:class:`media.forwarding.Publisher` and its ``ForwardingReceiver``, each subscriber's
``ForwardingSender``, :class:`recorder.RecorderTap`): :meth:`WorkerMetrics.sample`, run once a
second on the event loop (the only code here that reads loop-owned state), folds them into an
immutable :class:`Snapshot`. The heartbeat thread formats that snapshot plus what any thread may
read (loop lag, CPU load, the process collector). Those objects come and go (calls end, a party
re-offers, a monitor leaves), so each one's growth since the previous sample is added to totals
that never go backwards; what an object counted in its last second before it went away is lost.

Every sample carries ``worker="<worker id>"``; no label names a call.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from media import quality
from media.control import PARTIES
from media.quality import QualitySnapshot
from media.redis_keys import METRICS
from rtpkit.rtp import MEDIA_KINDS

if TYPE_CHECKING:
    from media.forwarding import Publisher
    from media.room import Room
    from recorder import RecorderTap
    from rtpkit.endpoints import ForwardingReceiver, ForwardingSender

log = logging.getLogger(__name__)

WORKER_LABEL: Final = "worker"
SAMPLE_S: Final = 1.0  # as often as the heartbeat publishes

# Read from each publisher and its receiver (a party's upstream), by media kind.
PUBLISHER_COUNTERS: Final = (
    ("visitation_sfu_rtp_packets_received", "RTP packets received from the parties"),
    (
        "visitation_sfu_rtp_packets_lost",
        "RTP packets lost between the parties and this worker (RFC 3550 cumulative loss of "
        "each received stream, as aiortc's receiver statistics count it)",
    ),
    ("visitation_sfu_nacks_sent", "RTCP NACKs sent to the parties for packets they lost"),
    ("visitation_sfu_plis_sent", "RTCP PLIs (key-frame requests) sent to the parties"),
)
# Read from each subscriber's sender (the other party, monitors), by media kind.
SENDER_COUNTERS: Final = (
    ("visitation_sfu_rtp_packets_forwarded", "RTP packets forwarded to subscribers"),
    (
        "visitation_sfu_rtp_packets_retransmitted",
        "RTP packets resent to subscribers on NACK (as RTX where negotiated)",
    ),
    ("visitation_sfu_nacks_received", "RTCP NACKs received from subscribers"),
    ("visitation_sfu_plis_received", "PLI/FIR key-frame requests received from subscribers"),
)


# Where a worker publishes its exposition text (``PX`` = its alive TTL); the name others import.
metrics_key: Final = METRICS


def with_labels(family: Metric, labels: Mapping[str, str]) -> Metric:
    """``family`` with ``labels`` set on every sample (replacing values of the same names)."""
    family.samples = [s._replace(labels={**s.labels, **labels}) for s in family.samples]
    return family


class _Labelled:
    """A collector whose samples all get ``labels`` (the process collector has none)."""

    def __init__(self, inner: ProcessCollector, labels: Mapping[str, str]) -> None:
        self._inner = inner
        self._labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            yield with_labels(family, self._labels)


class _Growth:
    """Per-object high-water marks: adds how much each object's counters grew since it was
    last seen. Objects are held weakly: a room's publishers and senders go away with it."""

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()

    def add(self, obj: object, values: Sequence[int], totals: list[int]) -> None:
        last = self._seen.get(obj)
        if last is None:
            last = self._seen[obj] = [0] * len(values)
        for i, value in enumerate(values):
            if value > last[i]:
                totals[i] += value - last[i]
                last[i] = value


def _zeros(width: int) -> dict[str, tuple[int, ...]]:
    return {kind: (0,) * width for kind in MEDIA_KINDS}


@dataclass(frozen=True)
class Snapshot:
    """What the event loop last counted; read by the heartbeat thread as one reference."""

    calls_open: int = 0
    calls_opened: int = 0
    calls_closed: int = 0
    refusals: int = 0
    publishers: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: _zeros(len(PUBLISHER_COUNTERS))
    )  # kind -> totals in PUBLISHER_COUNTERS order
    senders: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: _zeros(len(SENDER_COUNTERS))
    )
    recording_dropped: int = 0
    recording_backlog: int = 0
    quality: QualitySnapshot = field(default_factory=QualitySnapshot)


def _lost(receiver: ForwardingReceiver) -> int:
    rtx = receiver._rtx_ssrc
    return sum(
        max(0, int(stats.packets_lost))
        for ssrc, stats in tuple(receiver._streams.items())
        if ssrc not in rtx
    )


def _publisher_counts(publisher: Publisher) -> tuple[int, ...]:
    receiver = publisher.receiver
    return (publisher.packets, _lost(receiver), receiver.nacks_sent, receiver.plis_sent)


def _sender_counts(sender: ForwardingSender) -> tuple[int, ...]:
    return (
        sender.packets_sent,
        sender.retransmitted,
        sender.nacks_received,
        sender.keyframe_requests,
    )


class WorkerMetrics:
    """The worker's registry: sampled on the event loop, formatted in the heartbeat thread.

    ``rooms`` and ``taps`` are the worker's own dicts (read only by :meth:`sample`, on the
    loop); ``lag_s`` and ``load`` must be safe to call from any thread. The worker counts
    ``opened`` calls and capacity ``refused`` ``open_call`` requests itself, on the loop.
    """

    def __init__(
        self,
        worker_id: str,
        rooms: Mapping[str, Room],
        taps: Mapping[str, RecorderTap],
        *,
        lag_s: Callable[[], float],
        load: Callable[[], float],
        process: bool = True,
    ) -> None:
        self.worker_id = worker_id
        self._rooms = rooms
        self._taps = taps
        self._lag_s = lag_s
        self._load = load
        self.opened = 0
        self.refused = 0
        self._closed = 0
        self._publishers = _Growth()
        self._senders = _Growth()
        self._recorders = _Growth()
        self._publisher_totals = {kind: [0] * len(PUBLISHER_COUNTERS) for kind in MEDIA_KINDS}
        self._sender_totals = {kind: [0] * len(SENDER_COUNTERS) for kind in MEDIA_KINDS}
        self._dropped = [0]
        self.snapshot = Snapshot()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        if process:  # CPU seconds, memory, open files of this process
            labels = {WORKER_LABEL: worker_id}
            self.registry.register(_Labelled(ProcessCollector(registry=None), labels))

    # ---------------------------------------------------------------- on the event loop

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sample now and every :data:`SAMPLE_S` on ``loop`` until :meth:`stop`."""
        self._loop = loop
        self._tick()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None

    def _tick(self) -> None:
        try:
            self.sample()
        except Exception:
            log.exception("sfu worker %s: sampling metrics failed", self.worker_id)
        if self._loop is not None:
            self._timer = self._loop.call_later(SAMPLE_S, self._tick)

    def sample(self) -> Snapshot:
        """Fold the rooms' and recorders' counters into a new :attr:`snapshot` (on the loop)."""
        for room in self._rooms.values():
            for party in PARTIES:
                for kind in MEDIA_KINDS:
                    publisher = room.publisher(party, kind)
                    if publisher is None:
                        continue
                    totals = self._publisher_totals[kind]
                    self._publishers.add(publisher, _publisher_counts(publisher), totals)
                    for subscription in publisher.subscriptions:
                        sender = subscription.sender
                        totals = self._sender_totals[kind]
                        self._senders.add(sender, _sender_counts(sender), totals)
        backlog = 0
        for tap in self._taps.values():
            stats = tap.stats()
            self._recorders.add(tap, (int(stats["dropped_packets"]),), self._dropped)
            backlog += int(stats["pending_writes"])
        calls = len(self._rooms)
        # Every opened call is in ``rooms`` until it is closed (a room is briefly there
        # before its open_call is counted: never let that make "closed" go back).
        self._closed = max(self._closed, self.opened - calls)
        self.snapshot = Snapshot(
            calls_open=calls,
            calls_opened=self.opened,
            calls_closed=self._closed,
            refusals=self.refused,
            publishers={k: tuple(v) for k, v in self._publisher_totals.items()},
            senders={k: tuple(v) for k, v in self._sender_totals.items()},
            recording_dropped=self._dropped[0],
            recording_backlog=backlog,
            quality=quality.TOTALS.snapshot(room.quality for room in self._rooms.values()),
        )
        return self.snapshot

    # ---------------------------------------------------------------- from any thread

    def exposition(self) -> bytes:
        """This process's metrics in the Prometheus text format (the heartbeat publishes it)."""
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        worker = [self.worker_id]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=[WORKER_LABEL])
            family.add_metric(worker, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=[WORKER_LABEL])
            family.add_metric(worker, value)
            return family

        yield gauge("visitation_sfu_calls_open", "Calls open on this worker", snap.calls_open)
        yield counter("visitation_sfu_calls_opened", "Calls opened", snap.calls_opened)
        yield counter("visitation_sfu_calls_closed", "Calls closed", snap.calls_closed)
        yield counter(
            "visitation_sfu_admission_refusals",
            "open_call requests refused because the worker was at its call limit",
            snap.refusals,
        )
        for counters, totals in (
            (PUBLISHER_COUNTERS, snap.publishers),
            (SENDER_COUNTERS, snap.senders),
        ):
            for i, (name, doc) in enumerate(counters):
                family = CounterMetricFamily(name, doc, labels=[WORKER_LABEL, "kind"])
                for kind in MEDIA_KINDS:
                    family.add_metric([self.worker_id, kind], totals[kind][i])
                yield family
        yield counter(
            "visitation_sfu_recording_dropped_packets",
            "Packets not recorded because the recorder's disk fell too far behind",
            snap.recording_dropped,
        )
        yield gauge(
            "visitation_sfu_recording_backlog_writes",
            "Writes waiting for the recorders' disks",
            snap.recording_backlog,
        )
        yield gauge(
            "visitation_sfu_event_loop_lag_seconds",
            "Worst event-loop lag over the last one to two seconds",
            self._lag_s(),
        )
        yield from quality.metric_families(snap.quality, self.worker_id)
        yield gauge(
            "visitation_sfu_cpu_load",
            "Process CPU seconds per wall second, smoothed over a few seconds (admission's)",
            self._load(),
        )
