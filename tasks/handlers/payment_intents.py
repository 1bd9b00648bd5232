"""Payment intents: `payment_intent.succeeded`, `payment_intent.payment_failed`, and
`invoice_payment.paid` (API 2025-05-28+), which is a payment intent's success."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from models.enums import DebtStatus as D
from models.enums import PaymentKind, PaymentStatus
from models.enums import ProSubscriptionStatus as P
from models.ledger import Outcome, PaymentDraft, settle_without_change, transition
from models.tables import Debt, ProSubscription, WebhookEvent
from models.unit_of_work import LedgerTx
from tasks.handlers import ACTOR, RecordKey, handles, looks_up
from tasks.handlers.lookup import debt_by_intent, subscription_by_intent
from tasks.handlers.payload import (
    MalformedPayload,
    NotYetKnown,
    amount,
    child,
    currency,
    data_object,
    required_id,
)
from tasks.handlers.settlement import settle_debt


async def intent_succeeded(
    tx: LedgerTx, event: WebhookEvent, intent_id: str, paid: int, money: str
) -> Outcome:
    """A debt PENDING_SETTLEMENT -> SETTLED, or a ProSubscription -> ACTIVE."""
    debt = await debt_by_intent(tx, intent_id)
    if debt is not None:
        return await settle_debt(tx, event, debt, intent_id, paid, money)
    sub = await subscription_by_intent(tx, intent_id)
    if sub is None:
        raise NotYetKnown(f"no debt or Pro subscription for payment intent {intent_id} yet", [intent_id])
    payment = PaymentDraft(
        user_id=sub.user_id, kind=PaymentKind.SUBSCRIPTION, status=PaymentStatus.SUCCEEDED,
        amount_cents=paid, currency=money, stripe_object_id=intent_id,
    )
    fields = {} if sub.activated_at else {"activated_at": datetime.now(timezone.utc)}
    return await transition(
        tx, sub, P.ACTIVE, actor=ACTOR, event=event, payment=payment, fields=fields,
        stay_action="payment_recorded",
    )


def intent_keys(intent_id: str) -> list[RecordKey]:
    return [(Debt, "payment_intent_id", intent_id), (ProSubscription, "payment_intent_id", intent_id)]


@looks_up("payment_intent.succeeded", "payment_intent.payment_failed")
def payment_intent_keys(payload: Any) -> list[RecordKey]:
    return intent_keys(required_id(data_object(payload, "payment_intent"), "id"))


@looks_up("invoice_payment.paid")
def invoice_payment_keys(payload: Any) -> list[RecordKey]:
    payment = child(data_object(payload, "invoice_payment"), "payment")
    return intent_keys(required_id(payment, "payment_intent")) if payment is not None else []


@handles("payment_intent.succeeded")
async def payment_intent_succeeded(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    intent = data_object(payload, "payment_intent")
    intent_id = required_id(intent, "id")
    return await intent_succeeded(tx, event, intent_id, amount(intent, "amount"), currency(intent))


@handles("invoice_payment.paid")
async def invoice_payment_paid(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    record = data_object(payload, "invoice_payment")
    payment = child(record, "payment")
    if payment is None:
        raise MalformedPayload("invoice_payment has no payment")
    intent_id = required_id(payment, "payment_intent")
    paid_key = "amount_paid" if record.get("amount_paid") is not None else "amount_requested"
    return await intent_succeeded(tx, event, intent_id, amount(record, paid_key), currency(record))


@handles("payment_intent.payment_failed")
async def payment_intent_failed(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    """A debt PENDING_SETTLEMENT -> SETTLEMENT_FAILED; Payment FAILED."""
    intent = data_object(payload, "payment_intent")
    intent_id = required_id(intent, "id")
    tried, money = amount(intent, "amount"), currency(intent)
    debt = await debt_by_intent(tx, intent_id)
    if debt is None:
        if await subscription_by_intent(tx, intent_id) is not None:
            # The invoice.payment_failed of the same attempt carries the subscription's change.
            return await settle_without_change(
                tx, event, f"payment intent {intent_id} belongs to a Pro subscription: its invoice events apply"
            )
        raise NotYetKnown(f"no debt for payment intent {intent_id} yet", [intent_id])
    payment = PaymentDraft(
        user_id=debt.debtor_id, kind=PaymentKind.SETTLEMENT, status=PaymentStatus.FAILED,
        amount_cents=tried, currency=money, stripe_object_id=intent_id,
    )
    return await transition(tx, debt, D.SETTLEMENT_FAILED, actor=ACTOR, event=event, payment=payment)
