"""The inbox's state machine: the one place a WebhookEvent's status changes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TypedDict, Unpack

from models.audit import AuditDraft
from models.enums import WebhookEventStatus as S
from models.sql import update_row
from models.tables import WebhookEvent
from models.unit_of_work import LedgerTx

# Which moves the inbox allows; PROCESSING is never committed (the worker holds the row
# lock for the whole reconciliation instead, so a crash simply rolls back).
ALLOWED: dict[S, set[S]] = {
    S.RECEIVED: {S.PROCESSED, S.IGNORED, S.RETRYING, S.DEAD},
    S.RETRYING: {S.PROCESSED, S.IGNORED, S.RETRYING, S.DEAD, S.RECEIVED},
    S.DEAD: {S.RECEIVED},
    S.PROCESSED: set(),
    S.IGNORED: set(),
    S.PROCESSING: set(),
}


class EventTransitionNotAllowed(Exception):
    def __init__(self, event_id: str, from_status: S, to_status: S) -> None:
        super().__init__(f"webhook event {event_id}: {from_status.value} -> {to_status.value} is not allowed")
        self.event_id, self.from_status, self.to_status = event_id, from_status, to_status


def event_snapshot(event: WebhookEvent) -> dict[str, object]:
    """An inbox row as the audit log and the live feed carry it (no payload)."""
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status.value,
        "attempts": event.attempts,
        "last_error": event.last_error,
        "received_at": event.received_at.isoformat() if event.received_at else None,
        "processed_at": event.processed_at.isoformat() if event.processed_at else None,
        "next_attempt_at": event.next_attempt_at.isoformat() if event.next_attempt_at else None,
        "waiting_for": event.waiting_for,
        "livemode": event.livemode,
        "api_version": event.api_version,
    }


class MoveOptions(TypedDict, total=False):
    """How a move is recorded: who and why (audit), the error, the retry schedule, what
    it waits for, whether it counts as an attempt or a failure, and a note for the audit
    entry's `after` (why, e.g. a stale event)."""

    actor: str
    action: str
    last_error: str | None
    next_attempt_at: datetime | None
    waiting_for: str | None
    count_attempt: bool
    count_failure: bool
    note: str | None


async def move_event(tx: LedgerTx, event: WebhookEvent, to_status: S, **options: Unpack[MoveOptions]) -> None:
    """Move `event` (row locked by the caller) to `to_status`, audit the move and write it."""
    await update_row(tx.conn, event, plan_event_move(tx, event, to_status, **options))


def plan_event_move(
    tx: LedgerTx,
    event: WebhookEvent,
    to_status: S,
    *,
    actor: str = "reconciler",
    action: str = "status_changed",
    last_error: str | None = None,
    next_attempt_at: datetime | None = None,
    waiting_for: str | None = None,
    count_attempt: bool = True,
    count_failure: bool = False,
    note: str | None = None,
) -> dict[str, object]:
    """`move_event` without the write: check and apply the move to `event`, audit it, and
    return the column values the caller must write in this transaction."""
    from_status = event.status
    if to_status not in ALLOWED[from_status]:
        raise EventTransitionNotAllowed(event.id, from_status, to_status)
    now = datetime.now(timezone.utc)
    before = event_snapshot(event)
    event.status = to_status
    event.attempts += 1 if count_attempt else 0
    event.failures += 1 if count_failure else 0
    event.last_error = last_error  # type: ignore[assignment]  # TextField(null=True) is typed str
    event.next_attempt_at = next_attempt_at
    event.waiting_for = waiting_for
    if to_status in (S.PROCESSED, S.IGNORED):
        event.processed_at = now
    if to_status is S.RECEIVED:
        event.failures = 0
    after = event_snapshot(event)
    if note is not None:
        after["note"] = note
    tx.audit(
        AuditDraft(
            actor=actor,
            action=action,
            entity_type="WebhookEvent",
            entity_id=event.id,
            before=before,
            after=after,
            event_id=event.id,
            from_status=from_status.value,
            to_status=to_status.value,
        )
    )
    return {
        "status": event.status, "attempts": event.attempts, "failures": event.failures,
        "last_error": event.last_error, "next_attempt_at": event.next_attempt_at,
        "waiting_for": event.waiting_for, "processed_at": event.processed_at,
    }
