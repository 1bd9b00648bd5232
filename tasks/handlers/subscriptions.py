"""Stripe Billing subscriptions: `customer.subscription.updated` and `.deleted`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from models.enums import ProSubscriptionStatus as P
from models.ledger import Outcome, settle_without_change, transition
from models.tables import ProSubscription, WebhookEvent
from models.unit_of_work import LedgerTx
from tasks.handlers import ACTOR, RecordKey, handles, looks_up
from tasks.handlers.lookup import subscription_by_id
from tasks.handlers.payload import NotYetKnown, data_object, items, required_id, text, timestamp

STRIPE_STATUS = {
    "active": P.ACTIVE,
    "trialing": P.ACTIVE,
    "past_due": P.PAST_DUE,
    "unpaid": P.PAST_DUE,
    "canceled": P.CANCELED,
    "incomplete_expired": P.CANCELED,
    "incomplete": P.PENDING,
}


def current_period_end(subscription: dict[str, Any]) -> datetime | None:
    """Top-level before API 2025-03-31, on the items since."""
    ends = [e for e in (timestamp(i, "current_period_end") for i in items(subscription, "items")) if e]
    return max(ends) if ends else timestamp(subscription, "current_period_end")


@looks_up("customer.subscription.updated", "customer.subscription.deleted")
def subscription_keys(payload: Any) -> list[RecordKey]:
    return [(ProSubscription, "stripe_subscription_id", required_id(data_object(payload, "subscription"), "id"))]


@handles("customer.subscription.updated", "customer.subscription.deleted")
async def subscription_changed(tx: LedgerTx, event: WebhookEvent, payload: Any) -> Outcome:
    subscription = data_object(payload, "subscription")
    subscription_id = required_id(subscription, "id")
    deleted = event.type == "customer.subscription.deleted"
    stripe_status = "canceled" if deleted else text(subscription, "status")
    end = current_period_end(subscription)
    sub = await subscription_by_id(tx, subscription_id)
    if sub is None:
        raise NotYetKnown(f"no Pro subscription for {subscription_id} yet", [subscription_id])
    target = STRIPE_STATUS.get(stripe_status)
    if target is None:
        return await settle_without_change(
            tx, event, f"Stripe status {stripe_status!r} has no Trackit equivalent"[:300]
        )
    fields: dict[str, Any] = {}
    if end is not None and (sub.current_period_end is None or end > sub.current_period_end):
        fields["current_period_end"] = end
    if target is P.ACTIVE and sub.activated_at is None:
        fields["activated_at"] = datetime.now(timezone.utc)
    return await transition(tx, sub, target, actor=ACTOR, event=event, fields=fields)
