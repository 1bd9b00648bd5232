"""`POST /webhooks/stripe`: verify, store, enqueue after commit, answer. No reconciliation
work here: the request costs one signature check, one JSON parse and one INSERT."""

from __future__ import annotations

import asyncio
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

_JSON = "application/json"
_ACCEPTED = orjson.dumps({"received": True, "duplicate": False})
_DUPLICATE = orjson.dumps({"received": True, "duplicate": True})
_ENVELOPE_KEYS = (("id", 255), ("type", 128))  # the webhook_event columns' lengths


class Rejected(Exception):
    """A request refused before anything is stored; `metric` is the rejection reason label."""

    def __init__(self, status: int, reason: str, metric: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.metric = status, reason, metric


def _too_large(max_bytes: int) -> Rejected:
    return Rejected(413, f"body larger than {max_bytes} bytes", "too_large")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read at most `max_bytes`; a larger body is refused as soon as it shows, unread."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def verify(body: bytes, header: str | None, settings: Settings) -> str:
    """Check the Stripe signature against every configured secret; return the body text."""
    if not header:
        raise Rejected(400, "missing Stripe-Signature header", "no_signature")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8 text", "not_json") from None
    stale = False
    for secret in settings.stripe_webhook_secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, settings.webhook_tolerance_s)
            return text
        except stripe.SignatureVerificationError as exc:
            # The timestamp is checked only once a signature matched: this secret signed it.
            stale = stale or str(exc).startswith("Timestamp outside")
    if stale:
        raise Rejected(400, "timestamp outside the tolerance zone", "stale_timestamp")
    raise Rejected(400, "invalid signature", "bad_signature")


def parse_event(text: str) -> dict[str, Any]:
    """The event envelope, parsed once; it must carry a string `id` and `type`."""
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Rejected(400, "body is not JSON", "not_json") from None
    if not isinstance(event, dict):
        raise Rejected(400, "event is not a JSON object", "not_json")
    for key, longest in _ENVELOPE_KEYS:
        value = event.get(key)
        # NUL is in no Stripe id and PostgreSQL text cannot hold it, nor a longer value
        # its column: storing either would answer 503 to every redelivery.
        if not isinstance(value, str) or not value or len(value) > longest or "\x00" in value:
            raise Rejected(400, f"event has no valid `{key}`", "no_id_or_type")
    return event


def _answer(status: int, body: bytes, close: bool = False) -> Response:
    response = Response(body, status_code=status, media_type=_JSON)
    if close:
        # Closing makes uvicorn stop reading the rest of an oversized body.
        response.headers["connection"] = "close"
    return response


async def stripe_webhook(request: Request) -> Response:
    """Verify, store (insert-if-absent), enqueue a new event after its commit, answer."""
    started = time.perf_counter()
    settings: Settings = request.app.state.settings
    try:
        body = await read_body(request, settings.webhook_max_bytes)
        text = verify(body, request.headers.get("stripe-signature"), settings)
        event = parse_event(text)
    except Rejected as rejected:
        metrics.EVENTS_REJECTED.labels(rejected.metric).inc()
        return _answer(
            rejected.status, orjson.dumps({"error": rejected.reason}), close=rejected.status == 413
        )
    except ClientDisconnect:
        metrics.EVENTS_REJECTED.labels("disconnected").inc()
        return _answer(400, orjson.dumps({"error": "client disconnected"}))
    try:
        async with asyncio.timeout(settings.webhook_store_timeout_s):
            is_new = await store_event(event, text)
    except Exception as exc:
        # Never the payload in the log: the error class and message only.
        log.error(
            "cannot store webhook event: %s: %s", exc.__class__.__name__, exc,
            extra={"event_id": event["id"]},
        )
        metrics.EVENTS_REJECTED.labels("storage_unavailable").inc()
        return _answer(503, orjson.dumps({"error": "cannot store the event now; retry later"}))
    if is_new:
        request.app.state.sender.submit(event["id"])
        metrics.EVENTS_RECEIVED.labels(event["type"]).inc()
    else:
        metrics.EVENTS_DUPLICATE.inc()
    metrics.INGEST_LATENCY.observe(time.perf_counter() - started)
    return _answer(200, _ACCEPTED if is_new else _DUPLICATE)
