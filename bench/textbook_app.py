"""The textbook handler: `stripe.Webhook.construct_event`, one asyncpg INSERT, committed.

What a webhook route looks like when written from Stripe's docs: it builds the whole
object tree and inserts the event. It writes the same `webhook_event` table as trackit.
Reads BENCH_DATABASE_URL (postgresql://) and BENCH_WEBHOOK_SECRET."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import asyncpg
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = os.environ.get("BENCH_WEBHOOK_SECRET", "")
INSERT = (
    "INSERT INTO webhook_event (id, type, status, attempts, failures, received_at, livemode, "
    "api_version, created, payload) VALUES ($1, $2, 'RECEIVED', 0, 0, $3, $4, $5, $6, $7) "
    "ON CONFLICT (id) DO NOTHING"
)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"])
    try:
        yield
    finally:
        await app.state.pool.close()


async def webhook(request: Request) -> Response:
    """Verify and parse with construct_event, then store the event; answer once committed."""
    payload = await request.body()
    try:
        evt = stripe.Webhook.construct_event(payload, request.headers.get("stripe-signature", ""), SECRET)
    except (ValueError, stripe.SignatureVerificationError):
        return JSONResponse({"error": "invalid"}, status_code=400)
    # One autocommitted statement: the commit costs no extra round trips (BEGIN/COMMIT),
    # which makes this the strongest honest version of the baseline.
    await request.app.state.pool.execute(
        INSERT, evt.id, evt.type, datetime.now(timezone.utc), bool(evt.livemode),
        getattr(evt, "api_version", None), getattr(evt, "created", None), payload.decode(),
    )
    return JSONResponse({"received": True})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/webhooks/stripe", webhook, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan)
