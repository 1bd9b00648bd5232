"""`POST /webhooks/stripe`: verify, store, answer. No reconciliation work here."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import stripe
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from api import metrics
from api.settings import Settings
from models.ingest import store_event

log = logging.getLogger("trackit.webhooks")


class Rejected(Exception):
    def __init__(self, status: int, reason: str, metric: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.metric = status, reason, metric


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read at most `max_bytes`; a larger body is refused without being read whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Rejected(413, f"body larger than {max_bytes} bytes", "too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Rejected(413, f"body larger than {max_bytes} bytes", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def verify(body: bytes, header: str | None, settings: Settings) -> str:
    """Check the Stripe signature against every configured secret; return the body text."""
    if not header:
        raise Rejected(400, "missing Stripe-Signature header", "no_signature")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8", "not_json") from None
    stale = False
    for secret in settings.stripe_webhook_secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, settings.webhook_tolerance_s)
            return text
        except stripe.SignatureVerificationError as exc:
            stale = stale or "tolerance" in str(exc)
    if stale:
        raise Rejected(400, "timestamp outside the tolerance zone", "stale_timestamp")
    raise Rejected(400, "invalid signature", "bad_signature")


def parse_event(text: str) -> dict[str, Any]:
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Rejected(400, "body is not JSON", "not_json") from None
    if not isinstance(event, dict):
        raise Rejected(400, "event is not a JSON object", "not_json")
    for key in ("id", "type"):
        value = event.get(key)
        if not isinstance(value, str) or not value or len(value) > 255:
            raise Rejected(400, f"event has no valid `{key}`", "no_id_or_type")
    return event


async def stripe_webhook(request: Request) -> Response:
    started = time.perf_counter()
    settings: Settings = request.app.state.settings
    try:
        body = await read_body(request, settings.webhook_max_bytes)
        text = verify(body, request.headers.get("stripe-signature"), settings)
        event = parse_event(text)
    except Rejected as rejected:
        metrics.EVENTS_REJECTED.labels(rejected.metric).inc()
        return _json(rejected.status, {"error": rejected.reason})
    except ClientDisconnect:
        metrics.EVENTS_REJECTED.labels("disconnected").inc()
        return _json(400, {"error": "client disconnected"})
    try:
        is_new = await store_event(event, text)
    except Exception:
        log.exception("cannot store webhook event", extra={"event_id": event["id"]})
        metrics.EVENTS_REJECTED.labels("storage_unavailable").inc()
        return _json(503, {"error": "cannot store the event now; retry later"})
    if is_new:
        metrics.EVENTS_RECEIVED.labels(event["type"]).inc()
        request.app.state.sender.submit(event["id"])
    else:
        metrics.EVENTS_DUPLICATE.inc()
    metrics.INGEST_LATENCY.observe(time.perf_counter() - started)
    return _json(200, {"received": True, "duplicate": not is_new})
