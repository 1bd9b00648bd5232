"""JSON-simple pictures of records: the audit entry's `after` and `StatusChange.snapshot`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.tables import Debt, Group, ProSubscription, User


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def debt_snapshot(debt: Debt) -> dict[str, Any]:
    """A debt as the audit log and the live feed carry it."""
    return {
        "id": debt.id,
        "group_id": debt.group_id,
        "debtor_id": debt.debtor_id,
        "creditor_id": debt.creditor_id,
        "amount_cents": debt.amount_cents,
        "currency": debt.currency,
        "status": debt.status.value,
        "transfer_id": debt.transfer_id,
        "payment_intent_id": debt.payment_intent_id,
        "settled_at": iso(debt.settled_at),
        "updated_at": iso(debt.updated_at),
    }


def pro_subscription_snapshot(sub: ProSubscription) -> dict[str, Any]:
    """A Pro subscription as the audit log and the live feed carry it."""
    return {
        "id": sub.id,
        "user_id": sub.user_id,
        "status": sub.status.value,
        "stripe_subscription_id": sub.stripe_subscription_id,
        "stripe_customer_id": sub.stripe_customer_id,
        "payment_intent_id": sub.payment_intent_id,
        "current_period_end": iso(sub.current_period_end),
        "activated_at": iso(sub.activated_at),
        "updated_at": iso(sub.updated_at),
    }


def user_snapshot(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name}


def group_snapshot(group: Group, member_ids: list[int]) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "member_ids": member_ids}
