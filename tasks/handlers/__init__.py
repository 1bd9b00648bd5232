"""The handler registry: Stripe event type -> coroutine that reconciles it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from models.tables import WebhookEvent
from models.unit_of_work import LedgerTx

Handler = Callable[[LedgerTx, WebhookEvent], Awaitable[None]]

HANDLERS: dict[str, Handler] = {}
