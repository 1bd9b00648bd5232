"""Settling a debt from a Stripe object: shared by payment intents and transfers."""

from __future__ import annotations

from datetime import datetime, timezone

from models.enums import DebtStatus as D
from models.enums import PaymentKind, PaymentStatus
from models.ledger import Outcome, PaymentDraft, transition
from models.tables import Debt, WebhookEvent
from models.unit_of_work import LedgerTx
from tasks.handlers import ACTOR
from tasks.handlers.payload import AmountMismatch


def money_id(debt: Debt, fallback: str) -> str:
    """The payment intent when known, else the transfer: one row per money movement."""
    return debt.payment_intent_id or fallback


async def settle_debt(
    tx: LedgerTx, event: WebhookEvent, debt: Debt, stripe_object: str, paid: int, money: str
) -> Outcome:
    """PENDING_SETTLEMENT (or SETTLEMENT_FAILED) -> SETTLED, if the money matches."""
    if paid != debt.amount_cents or money != debt.currency:
        raise AmountMismatch(
            f"{stripe_object} moved {paid} {money} but debt {debt.id} is "
            f"{debt.amount_cents} {debt.currency}: not settled"
        )
    payment = PaymentDraft(
        user_id=debt.debtor_id, kind=PaymentKind.SETTLEMENT, status=PaymentStatus.SUCCEEDED,
        amount_cents=paid, currency=money, stripe_object_id=money_id(debt, stripe_object),
    )
    return await transition(
        tx, debt, D.SETTLED, actor=ACTOR, event=event, payment=payment,
        fields={"settled_at": debt.settled_at or datetime.now(timezone.utc)},
    )
