"""The one transition function: every status change of a Debt or a ProSubscription goes
through `transition`, from webhook handlers and registration alike."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from models.audit import AuditDraft
from models.enums import PaymentKind, PaymentStatus
from models.enums import WebhookEventStatus as S
from models.errors import TransitionNotAllowed
from models.inbox import move_event, plan_event_move
from models.machines import allows
from models.sql import dialect, execute, fetch, update_statement
from models.snapshots import debt_snapshot, pro_subscription_snapshot
from models.tables import Debt, Payment, ProSubscription, WebhookEvent
from models.unit_of_work import LedgerTx

Record = Debt | ProSubscription


class Outcome(str, enum.Enum):
    APPLIED = "applied"
    NO_CHANGE = "no_change"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class PaymentDraft:
    """One money movement; (stripe_object_id, status) identifies it across event types."""

    user_id: int
    kind: PaymentKind
    status: PaymentStatus
    amount_cents: int
    currency: str
    stripe_object_id: str


class ConcurrentChange(RuntimeError):
    """The conditional update matched no row: someone moved the record first."""


def entity_type(record: Record) -> str:
    return "Debt" if isinstance(record, Debt) else "ProSubscription"


def snapshot(record: Record) -> dict[str, Any]:
    return debt_snapshot(record) if isinstance(record, Debt) else pro_subscription_snapshot(record)


async def transition(
    tx: LedgerTx,
    record: Record,
    to_status: enum.Enum | None,
    *,
    actor: str,
    event: WebhookEvent | None = None,
    action: str = "status_changed",
    stay_action: str = "updated",
    fields: dict[str, Any] | None = None,
    payment: PaymentDraft | None = None,
) -> Outcome:
    """Move `record` (row locked by the caller) to `to_status` (None: the status stays),
    set `fields`, record `payment`, audit it and, for an event, mark the event PROCESSED.

    With an event, a stale or refused move is not an error: the event is PROCESSED with
    an audit entry saying so. Without one (registration), a refused move raises."""
    name = f"{entity_type(record)} {record.id}"
    from_status: enum.Enum = record.status
    created = event.created if event is not None else None
    if event is not None and created is not None and record.last_event_created is not None:
        if created < record.last_event_created:
            await _settle_event(tx, event, "stale_event", f"older than the last event applied to {name}")
            return Outcome.STALE
    if to_status is None or to_status == from_status:
        moves = False  # the status stays (a renewal, a payment recorded, ids updated)
        if event is None and to_status is not None and not allows(from_status, to_status):
            raise TransitionNotAllowed(name, from_status.value, to_status.value)
    elif allows(from_status, to_status):
        moves = True
    elif event is None:
        raise TransitionNotAllowed(name, from_status.value, to_status.value)
    else:
        note = f"{name} is {from_status.value}: -> {to_status.value} is not allowed"
        await _settle_event(tx, event, "no_change", note)
        return Outcome.NO_CHANGE
    changed = {k: v for k, v in (fields or {}).items() if getattr(record, k) != v}
    if not moves and not changed:
        # Only a new payment (a renewal, say) makes such an event count: try it first.
        if payment is None or event is None or not await _insert_payment(tx.conn, payment, record, event):
            if event is None:
                return Outcome.NO_CHANGE
            await _settle_event(tx, event, "no_change", f"{name} already reflects this event")
            return Outcome.NO_CHANGE
        payment = None
    before = snapshot(record)
    values: dict[str, Any] = {**changed, "updated_at": datetime.now(timezone.utc)}
    if moves:
        values["status"] = to_status
    if created is not None:
        values["last_event_created"] = max(created, record.last_event_created or created)
    for key, value in values.items():
        setattr(record, key, value)
    tx.audit(
        AuditDraft(
            actor=actor,
            action=action if moves else stay_action,
            entity_type=entity_type(record),
            entity_id=str(record.id),
            before=before,
            after=snapshot(record),
            event_id=event.id if event is not None else None,
            from_status=from_status.value if moves else None,
            to_status=to_status.value if moves and to_status is not None else None,
        )
    )
    event_values = plan_event_move(tx, event, S.PROCESSED, action="processed") if event else None
    count = await _write(tx.conn, record, values, from_status, payment, event, event_values)
    if count != 1:
        raise ConcurrentChange(f"{name} changed while {event.id if event else actor} applied")
    return Outcome.APPLIED


async def _write(
    conn: BaseDBAsyncClient,
    record: Record,
    values: dict[str, Any],
    from_status: enum.Enum,
    payment: PaymentDraft | None,
    event: WebhookEvent | None,
    event_values: dict[str, Any] | None,
) -> int:
    """Write the record's conditional update, the payment and the event's mark; the
    number of record rows updated (1, or 0 if its status moved meanwhile). PostgreSQL
    takes the three as one statement: one round trip instead of three."""
    name = dialect(conn)
    update, update_params = update_statement(record, values, {"status": from_status})
    statements: list[tuple[str, list[Any]]] = []
    if payment is not None and event is not None:
        statements.append(_payment_statement(payment, record, event))
    if event is not None and event_values is not None:
        statements.append(update_statement(event, event_values))
    if name == "postgres":
        ctes = [f"w{i} AS ({text})" for i, (text, _) in enumerate(statements)]
        text = f"WITH {', '.join([*ctes, f'rec AS ({update} RETURNING 1)'])} SELECT count(*) AS n FROM rec"
        params = [p for _, ps in statements for p in ps] + update_params
        rows = await fetch(conn, text, params)
        return int(rows[0]["n"])
    for text, params in statements:
        await execute(conn, text, params)
    return await execute(conn, update, update_params)


async def settle_without_change(tx: LedgerTx, event: WebhookEvent, note: str) -> Outcome:
    """Mark `event` PROCESSED with an audit entry saying why it changed nothing."""
    await _settle_event(tx, event, "no_change", note)
    return Outcome.NO_CHANGE


async def _settle_event(tx: LedgerTx, event: WebhookEvent, action: str, note: str) -> None:
    await move_event(tx, event, S.PROCESSED, action=action, note=note)


_occurred_at = Payment._meta.fields_map["occurred_at"]
_PAYMENT_COLUMNS = (
    "user_id, kind, status, amount_cents, currency, stripe_object_id, event_id, occurred_at,"
    " debt_id, pro_subscription_id"
)


def _payment_statement(payment: PaymentDraft, record: Record, event: WebhookEvent) -> tuple[str, list[Any]]:
    """Insert-if-absent of the payment: this money (or this event) recorded once."""
    at = datetime.fromtimestamp(event.created, timezone.utc) if event.created else datetime.now(timezone.utc)
    text = (
        f"INSERT INTO payment ({_PAYMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id"
    )
    return text, [
        payment.user_id,
        payment.kind.value,
        payment.status.value,
        payment.amount_cents,
        payment.currency,
        payment.stripe_object_id,
        event.id,
        _occurred_at.to_db_value(at, Payment),
        record.id if isinstance(record, Debt) else None,
        record.id if isinstance(record, ProSubscription) else None,
    ]


async def _insert_payment(
    conn: BaseDBAsyncClient, payment: PaymentDraft, record: Record, event: WebhookEvent
) -> bool:
    """Insert the payment unless this money (or this event) is recorded already."""
    text, params = _payment_statement(payment, record, event)
    return bool(await fetch(conn, text, params))
