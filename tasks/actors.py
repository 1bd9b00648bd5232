"""Dramatiq actors: thin bodies that run the reconcile coroutines on the bound loop.

Retries are ours, not Dramatiq's: the event row holds attempts, backoff and the error,
so the state survives any broker (the in-process one forgets on restart)."""

from __future__ import annotations

import dramatiq

from tasks.broker import QUEUE


@dramatiq.actor(actor_name="reconcile.event", queue_name=QUEUE, max_retries=0, time_limit=120_000)
def reconcile_event(event_id: str) -> None:
    """Reconcile one stored webhook event (idempotent: a duplicate message is a no-op).

    Messages that arrive together share a transaction (see `tasks.reconcile.Batcher`)."""
    from tasks.reconcile import BATCHER

    BATCHER.submit(event_id).result()
