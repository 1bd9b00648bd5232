"""Finding the record a Stripe id belongs to, row-locked for the transition."""

from __future__ import annotations

from models.sql import select_one
from models.tables import Debt, ProSubscription
from models.unit_of_work import LedgerTx


async def debt_by_transfer(tx: LedgerTx, transfer_id: str) -> Debt | None:
    return await select_one(
        tx.conn, Debt, "transfer_id = ?", [transfer_id], lock=True, skip_locked=tx.skip_locked
    )


async def debt_by_intent(tx: LedgerTx, intent_id: str) -> Debt | None:
    return await select_one(
        tx.conn, Debt, "payment_intent_id = ?", [intent_id], lock=True, skip_locked=tx.skip_locked
    )


async def subscription_by_id(tx: LedgerTx, subscription_id: str) -> ProSubscription | None:
    return await select_one(
        tx.conn, ProSubscription, "stripe_subscription_id = ?", [subscription_id], lock=True,
        skip_locked=tx.skip_locked,
    )


async def subscription_by_intent(tx: LedgerTx, intent_id: str) -> ProSubscription | None:
    return await select_one(
        tx.conn, ProSubscription, "payment_intent_id = ?", [intent_id], lock=True, skip_locked=tx.skip_locked
    )


async def subscription_by_keys(
    tx: LedgerTx, subscription_id: str | None, intent_ids: list[str]
) -> ProSubscription | None:
    """SPEC section 5: by subscription id, else by payment intent id."""
    if subscription_id is not None:
        sub = await subscription_by_id(tx, subscription_id)
        if sub is not None:
            return sub
    for intent_id in intent_ids:
        sub = await subscription_by_intent(tx, intent_id)
        if sub is not None:
            return sub
    return None
