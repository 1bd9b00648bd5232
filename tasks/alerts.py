"""Alerts for dead letters (SPEC section 10): an ERROR log line with the event id, a JSON
POST to TRACKIT_ALERT_WEBHOOK_URL when set, and Sentry when SENTRY_DSN is set.

Sent after the commit, off the event loop; a failing channel is logged, never raised."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import httpx

from api.settings import Settings

log = logging.getLogger("trackit.alerts")

ALERT_TIMEOUT_S = 3.0

_sentry_lock = threading.Lock()
_sentry_dsn: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    event_id: str
    event_type: str
    status: str
    reason: str
    at: str


def dead_event_alert(event_id: str, event_type: str, reason: str) -> Alert:
    return Alert(event_id, event_type, "DEAD", reason, datetime.now(timezone.utc).isoformat())


def raise_alert(settings: Settings, alert: Alert) -> None:
    """Log now; deliver to the webhook and Sentry on a background thread."""
    log.error(
        "webhook event %s is DEAD: %s", alert.event_id, alert.reason,
        extra={"event_id": alert.event_id, "event_type": alert.event_type},
    )
    if settings.alert_webhook_url or settings.sentry_dsn:
        threading.Thread(target=deliver, args=(settings, alert), name="trackit-alert", daemon=True).start()


def deliver(settings: Settings, alert: Alert) -> None:
    """Send `alert` to the configured channels (blocking; each failure is logged)."""
    if settings.alert_webhook_url:
        try:
            response = httpx.post(
                settings.alert_webhook_url,
                json={"source": "trackit", "kind": "webhook_event_dead", **asdict(alert)},
                timeout=ALERT_TIMEOUT_S,
            )
            response.raise_for_status()
        except Exception as exc:
            log.warning("alert webhook failed: %s", exc, extra={"event_id": alert.event_id})
    if settings.sentry_dsn:
        try:
            _init_sentry(settings.sentry_dsn)
            import sentry_sdk

            with sentry_sdk.new_scope() as scope:
                scope.set_tag("event_id", alert.event_id)
                scope.set_tag("event_type", alert.event_type)
                sentry_sdk.capture_message(
                    f"webhook event {alert.event_id} is DEAD: {alert.reason}", level="error"
                )
        except Exception as exc:
            log.warning("sentry alert failed: %s", exc, extra={"event_id": alert.event_id})


def _init_sentry(dsn: str) -> None:
    """Initialise Sentry once per process (the first alert does it)."""
    global _sentry_dsn
    with _sentry_lock:
        if _sentry_dsn == dsn:
            return
        import sentry_sdk

        sentry_sdk.init(dsn=dsn, traces_sample_rate=0.0, default_integrations=False)
        _sentry_dsn = dsn
