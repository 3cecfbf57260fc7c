"""Push metrics, in prometheus-client's default registry (served by the node's ``/metrics``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

PUSHES_SENT: Final = Counter(
    "visitation_push_sent_total", "Web Push messages a push service accepted, by type", ["type"]
)
PUSHES_FAILED: Final = Counter(
    "visitation_push_failed_total",
    "Web Push attempts that failed, by status (the HTTP status, or network, expired, gone, "
    "refused); 429 and 5xx are retried within the message's TTL",
    ["status"],
)
OUTBOX_DEPTH: Final = Gauge(
    "visitation_push_outbox_depth",
    "Web Push messages in the durable outbox (deployment-wide): due now, or waiting for a retry",
    ["queue"],
)
