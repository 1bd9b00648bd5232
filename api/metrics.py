"""Prometheus metrics of SPEC section 10, defined once for the whole process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
WS_SUBSCRIBERS = Gauge("trackit_websocket_subscribers", "Active GraphQL subscriptions")
