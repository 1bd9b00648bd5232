"""Prometheus metrics of SPEC section 10, defined once for the whole process.

`serve` answers `/metrics` with everything counted in its process, plus the inbox
backlog read from the database at scrape time. In distributed mode reconciliation runs
in `trackit worker` processes: each exposes its own counters on
`--metrics-port` / TRACKIT_WORKER_METRICS_PORT (scrape every worker and every serve)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("trackit.metrics")

EVENTS_RECEIVED = Counter(
    "trackit_webhook_events_received_total", "Stripe events stored (new)", ["type"]
)
EVENTS_DUPLICATE = Counter(
    "trackit_webhook_events_duplicate_total", "Stripe events already stored (redelivered)"
)
EVENTS_REJECTED = Counter(
    "trackit_webhook_requests_rejected_total", "Webhook requests rejected", ["reason"]
)
INGEST_LATENCY = Histogram(
    "trackit_webhook_ingest_seconds",
    "Time from request start to the answer of an accepted webhook",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
EVENTS_PROCESSED = Counter(
    "trackit_webhook_events_processed_total",
    "Reconciliation outcomes",
    ["type", "outcome"],
)
EVENTS_DEAD = Counter("trackit_webhook_events_dead_total", "Events that went DEAD")
RECEIVE_TO_PROCESSED = Histogram(
    "trackit_receive_to_processed_seconds",
    "Time from receipt to a final status",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BACKLOG = Gauge("trackit_webhook_backlog", "Events not yet in a final status", ["status"])
OLDEST_UNPROCESSED = Gauge(
    "trackit_webhook_oldest_unprocessed_age_seconds",
    "Age of the oldest RECEIVED or RETRYING event (0 when there is none)",
)
WS_SUBSCRIBERS = Gauge("trackit_websocket_subscribers", "Active GraphQL subscriptions")

# DEAD is final for the reconciler but waits for an operator: it counts as backlog.
BACKLOG_STATUSES = ("RECEIVED", "PROCESSING", "RETRYING", "DEAD")
_WAITING = ("RECEIVED", "RETRYING")
BACKLOG_QUERY_TIMEOUT_S = 2.0


async def refresh_backlog() -> None:
    """Read the inbox counts per status into the backlog gauges (called at scrape time).
    A database that does not answer leaves the last values and logs a warning."""
    from tortoise.functions import Count, Min

    from models.tables import WebhookEvent

    async def read() -> tuple[dict[str, int], datetime | None]:
        rows = await (
            WebhookEvent.filter(status__in=BACKLOG_STATUSES)
            .annotate(n=Count("id"))
            .group_by("status")
            .values("status", "n")
        )
        oldest = await (
            WebhookEvent.filter(status__in=_WAITING).annotate(first=Min("received_at")).values("first")
        )
        counts = {str(getattr(r["status"], "value", r["status"])): int(r["n"]) for r in rows}
        return counts, (oldest[0]["first"] if oldest else None)

    try:
        counts, oldest_at = await asyncio.wait_for(read(), timeout=BACKLOG_QUERY_TIMEOUT_S)
    except Exception as exc:
        log.warning("cannot read the inbox backlog for /metrics: %s", exc)
        return
    for status in BACKLOG_STATUSES:
        BACKLOG.labels(status).set(counts.get(status, 0))
    if isinstance(oldest_at, str):
        oldest_at = datetime.fromisoformat(oldest_at)
    if oldest_at is not None and oldest_at.tzinfo is None:
        oldest_at = oldest_at.replace(tzinfo=timezone.utc)
    age = (datetime.now(timezone.utc) - oldest_at).total_seconds() if oldest_at else 0.0
    OLDEST_UNPROCESSED.set(max(age, 0.0))


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose this worker process's metrics on http://host:port/metrics (a daemon thread)."""
    start_http_server(port, addr=host)
    log.info("worker metrics on http://%s:%d/metrics", host, port)
