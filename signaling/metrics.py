"""A signaling node's metrics, and its ``GET /metrics``: its own plus every live SFU worker's.

The metric objects the node's code updates are declared here (module level, in
prometheus-client's default registry). What lives in Redis rather than in this process is read
when scraped (:meth:`NodeMetrics.exposition`): live calls by state and the billing outbox
depth (both for the whole deployment, the same on every node), and each live worker's
exposition text, which its heartbeat writes to ``sfu:metrics:{worker}`` (:mod:`media.metrics`).
Families are merged by name, so the answer has one ``HELP``/``TYPE`` per family whichever
processes contributed samples; every worker sample carries ``worker="<id>"``, set here from
the key it came from. If Redis cannot be read (in time), the node's own metrics are still
served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from billing_hooks.outbox import Outbox
from core.redis_text import text
from core.tokens import ROLES
from media.liveness import LoopLag
from media.metrics import WORKER_LABEL, metrics_key, with_labels
from media.redis_keys import WORKERS

log = logging.getLogger(__name__)

# Nothing of signaling's is imported at load time (see _calls_by_state): any module may use
# the metric objects below, signaling.timers included.
REDIS_PART_TIMEOUT_S: Final = 2.0  # a scrape answers in time even with Redis unreachable

SOCKET_EVENTS: Final = Counter(
    "visitation_socket_events_total", "Socket.IO events handled", ["event", "result"]
)
ADMISSION_REFUSALS: Final = Counter(
    "visitation_admission_refusals_total",
    "call.place refused by this node, by reason (the error code: capacity, outside_hours, ...)",
    ["reason"],
)
TIMER_LATENESS: Final = Histogram(
    "visitation_timer_lateness_seconds",
    "How long after its due time a durable timer was handled, by timer kind",
    ["kind"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)


class _Merged:
    """Families merged by name: one family (HELP/TYPE from its first contributor) holding
    every process's samples. A family of another type under a taken name, or a sample
    already present (same name and labels), is dropped: the output stays valid."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families: dict[str, Metric] = {}
        seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
        for family in families:
            merged = self._families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                self._families[family.name] = merged
            elif merged.type != family.type:
                log.warning(
                    "metric %s: a %s family cannot join the %s family; dropped",
                    family.name,
                    family.type,
                    merged.type,
                )
                continue
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                if key not in seen:
                    seen.add(key)
                    merged.samples.append(sample)

    def collect(self) -> Iterable[Metric]:
        return list(self._families.values())


def _gauge(name: str, doc: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value_label, value in values.items():
        family.add_metric([value_label], value)
    return family


class NodeMetrics:
    """Scrape-time metrics of one node; ``start``/``stop`` bound its event-loop lag probe."""

    def __init__(
        self,
        redis: Redis,
        *,
        roles: Callable[[], Iterable[str]],
        facility_ids: Callable[[], Awaitable[list[str]]],
        outboxes: Sequence[Outbox],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._redis = redis
        self._roles = roles  # of this node's Socket.IO sessions
        self._facility_ids = facility_ids
        self._outboxes = outboxes
        self._registry = registry
        self._lag: LoopLag | None = None

    def start(self) -> None:
        self._lag = LoopLag(asyncio.get_running_loop())
        self._lag.start()

    def stop(self) -> None:
        if self._lag is not None:
            self._lag.stop()
            self._lag = None

    async def exposition(self) -> bytes:
        """The node's metrics and every live worker's, in the Prometheus text format."""
        families = [*self._registry.collect(), *self._local()]
        for part in (self._calls_by_state, self._outbox_depth, self._workers):
            try:
                families += await asyncio.wait_for(part(), REDIS_PART_TIMEOUT_S)
            except Exception as exc:  # Redis down or slow: still serve what this node knows
                log.warning("metrics: %s unavailable: %r", part.__name__.strip("_"), exc)
        return generate_latest(_Merged(families))

    def _local(self) -> list[Metric]:
        connections = dict.fromkeys(ROLES, 0.0)
        for role in self._roles():
            connections[role] = connections.get(role, 0.0) + 1
        lag = GaugeMetricFamily(
            "visitation_node_event_loop_lag_seconds",
            "Worst event-loop lag of this node over the last one to two seconds",
            value=self._lag.recent_max_s() if self._lag is not None else 0.0,
        )
        sockets = _gauge(
            "visitation_socketio_connections",
            "Socket.IO connections to this node, by role",
            "role",
            connections,
        )
        return [lag, sockets]

    async def _calls_by_state(self) -> list[Metric]:
        # Imported here: signaling.timers (imported by call_state) will import this module's
        # TIMER_LATENESS, so this module imports nothing of signaling's at load time.
        from signaling.call_state import LIVE
        from signaling.redis_keys import CALL as call_key
        from signaling.redis_keys import LIVE_CALLS as live_calls_key

        facility_ids = await self._facility_ids()
        async with self._redis.pipeline(transaction=False) as pipe:
            for facility_id in facility_ids:
                pipe.smembers(live_calls_key(facility_id))
            members = await pipe.execute()
        call_ids = sorted({text(m) for group in members for m in group})
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in call_ids:
                pipe.hget(call_key(call_id), "state")
            states = await pipe.execute()
        counts = {state.value: 0.0 for state in LIVE}
        for state in states:
            if state is not None and text(state) in counts:
                counts[text(state)] += 1
        doc = "Live calls of the deployment (every node reports the same), by state"
        return [_gauge("visitation_calls_live", doc, "state", counts)]

    async def _outbox_depth(self) -> list[Metric]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for outbox in self._outboxes:
                pipe.xlen(outbox.stream)
                pipe.xlen(outbox.dead_stream)
            lengths = [int(n) for n in await pipe.execute()]
        depth = {"pending": float(sum(lengths[0::2])), "dead_letter": float(sum(lengths[1::2]))}
        doc = "Billing events waiting in the durable outbox, or dead-lettered (deployment-wide)"
        return [_gauge("visitation_billing_outbox_depth", doc, "queue", depth)]

    async def _workers(self) -> list[Metric]:
        ids = sorted(text(w) for w in await self._redis.smembers(WORKERS()))
        texts = await self._redis.mget([metrics_key(w) for w in ids]) if ids else []
        families: list[Metric] = []
        reporting = 0
        for worker, raw in zip(ids, texts, strict=True):
            if raw is None:  # dead (its key expired), or not publishing metrics
                continue
            try:
                parsed = list(text_string_to_metric_families(text(raw)))
            except Exception as exc:
                log.warning("metrics of sfu worker %s do not parse: %r", worker, exc)
                continue
            families += [with_labels(family, {WORKER_LABEL: worker}) for family in parsed]
            reporting += 1
        workers = GaugeMetricFamily(
            "visitation_sfu_workers_reporting",
            "Live SFU workers whose metrics are included here",
            value=reporting,
        )
        return [workers, *families]
