"""Transcription metrics on the node's ``/metrics``: the queue's backlog and the running totals.

Both are the deployment's, kept in Redis (the workers are other processes, often on other
hosts): the queue's depth by state, read from the broker's keys
(:func:`transcripts.queue.queue_depth`), and the totals the store keeps in ``transcripts:stats``
(transcripts done, tries failed, seconds of audio, CPU seconds; :mod:`transcripts.store`).
A scrape cannot wait on Redis, so each node samples them every few seconds
(:class:`TranscriptionSampler`, started and stopped with the node) into one collector in
prometheus-client's default registry (:data:`COLLECTOR`), which the node's ``/metrics`` serves.
Every node reports the same figures: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from core.tasks import Periodic
from transcripts.queue import QueueDepth, queue_depth
from transcripts.store import TranscriptStore

log = logging.getLogger(__name__)

SAMPLE_S: Final = 5.0


@dataclass(frozen=True)
class Sample:
    depth: QueueDepth
    totals: dict[str, float] = field(default_factory=dict)
    at: float = 0.0


class TranscriptionCollector(Collector):
    """The latest sample, as metric families (none before the first sample)."""

    def __init__(self) -> None:
        self.latest: Sample | None = None

    def describe(self) -> Iterable[Metric]:
        return _families(Sample(QueueDepth(0, 0, 0, 0)))

    def collect(self) -> Iterable[Metric]:
        return _families(self.latest) if self.latest is not None else []


def _labelled(family: GaugeMetricFamily | CounterMetricFamily, values: dict[str, float]) -> Metric:
    for label, value in values.items():
        family.add_metric([label], value)
    return family


def _families(sample: Sample) -> list[Metric]:
    depth, totals = sample.depth, sample.totals
    wide = ", deployment-wide"
    states = {s: float(getattr(depth, s)) for s in ("queued", "retrying", "working", "dead")}
    outcomes = {o: totals.get(o, 0.0) for o in ("retried", "dead_lettered")}
    return [
        GaugeMetricFamily(
            "visitation_transcription_backlog",
            "Transcription jobs not yet being done (queued, or due again after a failed try)"
            + wide,
            value=depth.backlog,
        ),
        _labelled(
            GaugeMetricFamily(
                "visitation_transcription_jobs",
                "Transcription jobs in the queue by state (queued, retrying, working, dead)" + wide,
                labels=["state"],
            ),
            states,
        ),
        CounterMetricFamily(
            "visitation_transcriptions_done",
            "Transcripts done (signed and stored)" + wide,
            value=totals.get("done", 0.0),
        ),
        _labelled(
            CounterMetricFamily(
                "visitation_transcriptions_failed",
                "Transcription tries that failed, by outcome (retried, dead_lettered)" + wide,
                labels=["outcome"],
            ),
            outcomes,
        ),
        CounterMetricFamily(
            "visitation_transcribed_audio_seconds",
            "Seconds of call audio transcribed (both parties)" + wide,
            value=totals.get("audio_s", 0.0),
        ),
        CounterMetricFamily(
            "visitation_transcription_cpu_seconds",
            "CPU seconds the transcription workers spent on the transcripts done" + wide,
            value=totals.get("cpu_s", 0.0),
        ),
    ]


COLLECTOR: Final = TranscriptionCollector()
REGISTRY.register(COLLECTOR)


class TranscriptionSampler:
    """Samples the queue and the totals into ``collector`` every ``interval_s``."""

    def __init__(
        self,
        redis: Redis,
        *,
        collector: TranscriptionCollector = COLLECTOR,
        interval_s: float = SAMPLE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._store = TranscriptStore(redis)
        self._collector = collector
        self._clock = clock
        self._task = Periodic("transcripts-metrics", self.sample, interval_s, delay_first=False)

    async def sample(self) -> Sample:
        sample = Sample(await queue_depth(self._redis), await self._store.stats(), self._clock())
        self._collector.latest = sample
        return sample

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
