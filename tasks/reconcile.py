"""Claim a stored event, dispatch it on its type, and mark it, in one transaction."""

from __future__ import annotations

import logging

from models.enums import WebhookEventStatus as S
from models.inbox import move_event
from models.tables import WebhookEvent
from models.unit_of_work import ledger_transaction
from tasks.handlers import HANDLERS

log = logging.getLogger("trackit.reconcile")

CLAIMABLE = (S.RECEIVED, S.RETRYING)


async def reconcile(event_id: str) -> None:
    """Apply one event exactly once in effect: the row lock makes concurrent workers wait,
    and the status check makes a repeated message a no-op."""
    async with ledger_transaction() as tx:
        event = (
            await WebhookEvent.filter(id=event_id, status__in=CLAIMABLE)
            .using_db(tx.conn)
            .select_for_update()
            .first()
        )
        if event is None:
            return
        handler = HANDLERS.get(event.type)
        if handler is None:
            await move_event(tx, event, S.IGNORED, action="ignored")
            return
        await handler(tx, event)
