"""Delivering Stripe events in-process: store them as the webhook does, then reconcile."""

from __future__ import annotations

from typing import Any

from api.settings import Settings
from models.ingest import store_event
from models.tables import WebhookEvent
from tasks.reconcile import reconcile
from tests.fixtures.stripe_events import body_of


async def store(evt: dict[str, Any]) -> bool:
    return await store_event(evt, body_of(evt).decode())


async def deliver(evt: dict[str, Any], settings: Settings) -> WebhookEvent:
    """Store `evt` (insert-if-absent) and reconcile it; return the event row after."""
    await store(evt)
    await reconcile(evt["id"], settings)
    return await WebhookEvent.get(id=evt["id"])
