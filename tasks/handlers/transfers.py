"""Connect transfers: `transfer.created` (and the older names `transfer.succeeded`,
`transfer.paid`) settle a debt; `transfer.reversed` of a whole transfer reopens it."""

from __future__ import annotations

from typing import Any

from models.enums import DebtStatus as D
from models.enums import PaymentKind, PaymentStatus
from models.ledger import Outcome, PaymentDraft, settle_without_change, transition
from models.tables import Debt, WebhookEvent
from models.unit_of_work import LedgerTx
from tasks.handlers import ACTOR, RecordKey, handles, looks_up
from tasks.handlers.lookup import debt_by_transfer
from tasks.handlers.payload import NotYetKnown, amount, currency, data_object, required_id
from tasks.handlers.settlement import money_id, settle_debt


@looks_up("transfer.created", "transfer.succeeded", "transfer.paid", "transfer.reversed")
def transfer_keys(payload: Any) -> list[RecordKey]:
    return [(Debt, "transfer_id", required_id(data_object(payload, "transfer"), "id"))]


@handles("transfer.created", "transfer.succeeded", "transfer.paid")
async def transfer_settled(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    transfer = data_object(payload, "transfer")
    transfer_id = required_id(transfer, "id")
    sent, money = amount(transfer, "amount"), currency(transfer)
    debt = await debt_by_transfer(tx, transfer_id)
    if debt is None:
        raise NotYetKnown(f"no debt for transfer {transfer_id} yet", [transfer_id])
    return await settle_debt(tx, event, debt, transfer_id, sent, money)


@handles("transfer.reversed")
async def transfer_reversed(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    """A fully reversed transfer: SETTLED -> OPEN, Payment REVERSED."""
    transfer = data_object(payload, "transfer")
    transfer_id = required_id(transfer, "id")
    sent, reversed_amount, money = amount(transfer, "amount"), amount(transfer, "amount_reversed"), currency(transfer)
    debt = await debt_by_transfer(tx, transfer_id)
    if debt is None:
        raise NotYetKnown(f"no debt for transfer {transfer_id} yet", [transfer_id])
    if reversed_amount < sent or sent == 0:
        return await settle_without_change(
            tx, event, f"transfer {transfer_id} reversed {reversed_amount} of {sent}: debt {debt.id} stays"
        )
    if debt.status is D.PENDING_SETTLEMENT:
        # The reversal overtook the transfer's own event: apply it once the debt is settled.
        raise NotYetKnown(f"debt {debt.id} is not settled yet; the reversal of {transfer_id} waits for it")
    payment = PaymentDraft(
        user_id=debt.debtor_id, kind=PaymentKind.SETTLEMENT, status=PaymentStatus.REVERSED,
        amount_cents=reversed_amount, currency=money, stripe_object_id=money_id(debt, transfer_id),
    )
    return await transition(
        tx, debt, D.OPEN, actor=ACTOR, event=event, payment=payment, fields={"settled_at": None},
        action="reversed",
    )
