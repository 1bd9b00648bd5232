"""The handler registry: Stripe event type -> coroutine that reconciles it.

A handler reads the ids from the payload, finds the record (row-locked) and calls
`models.ledger.transition`, which applies the change and marks the event. It raises
`MalformedPayload`, `NotYetKnown` or `AmountMismatch` (see `payload.py`) before any write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tortoise.models import Model

from models.ledger import Outcome
from models.tables import WebhookEvent
from models.unit_of_work import LedgerTx

Handler = Callable[[LedgerTx, WebhookEvent, Any], Awaitable[Outcome]]

HANDLERS: dict[str, Handler] = {}

RecordKey = tuple[type[Model], str, str]
Keys = Callable[[Any], list[RecordKey]]
"""The records a handler will look up for a payload, as (model, column, Stripe id): a
batch reads them all ahead in one statement per table (`lookup.prefetch_records`)."""

LOOKUPS: dict[str, Keys] = {}
T = TypeVar("T")

# The actor recorded on changes applied from what Stripe said.
ACTOR = "stripe"


def _registrar(registry: dict[str, T], event_types: tuple[str, ...]) -> Callable[[T], T]:
    def register(function: T) -> T:
        for event_type in event_types:
            registry[event_type] = function
        return function

    return register


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine for `event_types`."""
    return _registrar(HANDLERS, event_types)


def looks_up(*event_types: str) -> Callable[[Keys], Keys]:
    """Register the decorated function as the record keys of `event_types`' payloads."""
    return _registrar(LOOKUPS, event_types)


# Importing the families fills HANDLERS.
from tasks.handlers import invoices, payment_intents, subscriptions, transfers  # noqa: E402,F401
