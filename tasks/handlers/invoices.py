"""Subscription invoices: `invoice.paid`, `invoice.payment_succeeded`, `invoice.payment_failed`.

Ids are read from both shapes: before API 2025-03-31 `subscription` and `payment_intent`
sit on the invoice; since then under `parent.subscription_details.subscription` and
`payments.data[].payment.payment_intent` (and `payments` may be absent altogether)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from models.enums import PaymentKind, PaymentStatus
from models.enums import ProSubscriptionStatus as P
from models.ledger import Outcome, PaymentDraft, transition
from models.tables import ProSubscription, WebhookEvent
from models.unit_of_work import LedgerTx
from tasks.handlers import ACTOR, RecordKey, handles, looks_up
from tasks.handlers.lookup import subscription_by_keys
from tasks.handlers.payload import (
    MalformedPayload,
    NotYetKnown,
    amount,
    child,
    currency,
    data_object,
    items,
    required_id,
    stripe_id,
    timestamp,
)


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """The subscription id, from the current shape or the pre-2025-03-31 one."""
    parent = child(invoice, "parent")
    details = child(parent, "subscription_details") if parent is not None else None
    new = stripe_id(details, "subscription") if details is not None else None
    return new or stripe_id(invoice, "subscription")


def invoice_intents(invoice: dict[str, Any]) -> list[str]:
    """Payment intent ids, the paid ones first (current shape), then the top-level one."""
    found: list[tuple[bool, str]] = []
    for entry in items(invoice, "payments"):
        payment = child(entry, "payment")
        intent = stripe_id(payment, "payment_intent") if payment is not None else None
        if intent is not None:
            found.append((entry.get("status") != "paid", intent))
    ids = [intent for _, intent in sorted(found, key=lambda f: f[0])]
    old = stripe_id(invoice, "payment_intent")
    if old is not None and old not in ids:
        ids.append(old)
    return ids


def period_end(invoice: dict[str, Any]) -> datetime | None:
    """The end of the period the invoice pays for: its subscription lines' period."""
    ends = []
    for line in items(invoice, "lines"):
        period = child(line, "period")
        end = timestamp(period, "end") if period is not None else None
        if end is not None:
            ends.append(end)
    return max(ends) if ends else timestamp(invoice, "period_end")


def _read(event: WebhookEvent, payload: Any) -> tuple[dict[str, Any], str | None, list[str]]:
    invoice = data_object(payload, "invoice")
    required_id(invoice, "id")
    subscription_id, intents = invoice_subscription(invoice), invoice_intents(invoice)
    if subscription_id is None and not intents:
        raise MalformedPayload(f"invoice {invoice['id']} carries no subscription or payment intent id")
    return invoice, subscription_id, intents


@looks_up("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed")
def invoice_keys(payload: Any) -> list[RecordKey]:
    invoice = data_object(payload, "invoice")
    subscription_id = invoice_subscription(invoice)
    keys: list[RecordKey] = [(ProSubscription, "payment_intent_id", i) for i in invoice_intents(invoice)]
    if subscription_id is not None:
        keys.append((ProSubscription, "stripe_subscription_id", subscription_id))
    return keys


@handles("invoice.paid", "invoice.payment_succeeded")
async def invoice_paid(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    """PENDING/PAST_DUE -> ACTIVE; on an ACTIVE one a renewal (the period moves)."""
    invoice, subscription_id, intents = _read(event, payload)
    paid, money = amount(invoice, "amount_paid"), currency(invoice)
    end = period_end(invoice)
    sub = await subscription_by_keys(tx, subscription_id, intents)
    if sub is None:
        raise NotYetKnown(
            f"no Pro subscription for {subscription_id or ' / '.join(intents)} yet",
            [i for i in (subscription_id, *intents) if i],
        )
    fields: dict[str, Any] = {}
    if end is not None and (sub.current_period_end is None or end > sub.current_period_end):
        fields["current_period_end"] = end
    if sub.activated_at is None:
        fields["activated_at"] = datetime.now(timezone.utc)
    payment = PaymentDraft(
        user_id=sub.user_id, kind=PaymentKind.SUBSCRIPTION, status=PaymentStatus.SUCCEEDED,
        amount_cents=paid, currency=money, stripe_object_id=intents[0] if intents else invoice["id"],
    )
    return await transition(
        tx, sub, P.ACTIVE, actor=ACTOR, event=event, fields=fields, payment=payment,
        stay_action="renewed",
    )


@handles("invoice.payment_failed")
async def invoice_payment_failed(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    """ACTIVE -> PAST_DUE; a PENDING or PAST_DUE one stays; Payment FAILED either way."""
    invoice, subscription_id, intents = _read(event, payload)
    due = amount(invoice, "amount_due")
    money = currency(invoice)
    sub = await subscription_by_keys(tx, subscription_id, intents)
    if sub is None:
        raise NotYetKnown(
            f"no Pro subscription for {subscription_id or ' / '.join(intents)} yet",
            [i for i in (subscription_id, *intents) if i],
        )
    target = P.PAST_DUE if sub.status in (P.ACTIVE, P.CANCELED) else None
    payment = PaymentDraft(
        user_id=sub.user_id, kind=PaymentKind.SUBSCRIPTION, status=PaymentStatus.FAILED,
        amount_cents=due, currency=money, stripe_object_id=intents[0] if intents else invoice["id"],
    )
    return await transition(
        tx, sub, target, actor=ACTOR, event=event, payment=payment, stay_action="payment_failed"
    )
