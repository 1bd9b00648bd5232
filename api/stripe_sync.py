"""The stuck-record check: a record `PENDING` or `PENDING_SETTLEMENT` for too long is
looked up by its Stripe id, and what Stripe says becomes a synthetic event in the inbox,
so the same handlers apply it exactly once (never a status written around them)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from api.stripe_api import StripeApi
from api.stripe_payloads import CURRENT_API
from models.enums import DebtStatus, ProSubscriptionStatus
from models.tables import Debt, ProSubscription

# Stripe subscription statuses that say nothing new about a PENDING record.
_STILL_PENDING_SUBSCRIPTION = {"incomplete"}
_FAILED_INTENT = {"requires_payment_method", "canceled"}


@dataclass(frozen=True, slots=True)
class Finding:
    """What Stripe says about one stuck record; `event` is None when there is nothing to apply."""

    record: str
    age_s: float
    note: str
    event: dict[str, Any] | None = None


def sync_event(event_type: str, obj: dict[str, Any], state: str) -> dict[str, Any]:
    """An event envelope around an object fetched from Stripe. The id is deterministic,
    so running the check twice stores it once."""
    return {
        "id": f"evt_sync_{obj['id']}_{state}",
        "object": "event",
        "type": event_type,
        "api_version": CURRENT_API,
        "created": int(time.time()),
        "livemode": bool(obj.get("livemode", False)),
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": "trackit-stuck-record-check"},
        "data": {"object": obj},
    }


async def stuck_records(older_than_s: float) -> list[Debt | ProSubscription]:
    """Debts PENDING_SETTLEMENT and Pro subscriptions PENDING not updated for `older_than_s`."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_s)
    debts = await Debt.filter(status=DebtStatus.PENDING_SETTLEMENT, updated_at__lte=cutoff).order_by("id")
    subs = await ProSubscription.filter(
        status=ProSubscriptionStatus.PENDING, updated_at__lte=cutoff
    ).order_by("id")
    return [*debts, *subs]


async def ask_stripe(api: StripeApi, record: Debt | ProSubscription) -> Finding:
    """Look the record's Stripe ids up and turn the answer into an event to store, if any."""
    age = (datetime.now(timezone.utc) - record.updated_at).total_seconds()
    if isinstance(record, Debt):
        label = f"debt {record.id} ({record.status.value})"
        if record.transfer_id:
            return await _transfer(api, label, age, record.transfer_id)
        if record.payment_intent_id:
            return await _payment_intent(api, label, age, record.payment_intent_id)
        return Finding(label, age, "no Stripe id registered")
    label = f"Pro subscription {record.id} ({record.status.value})"
    if record.stripe_subscription_id:
        finding = await _subscription(api, label, age, record.stripe_subscription_id)
        if finding.event is not None or not record.payment_intent_id:
            return finding
    if record.payment_intent_id:
        return await _payment_intent(api, label, age, record.payment_intent_id)
    return Finding(label, age, "no Stripe id registered")


async def _transfer(api: StripeApi, label: str, age: float, transfer_id: str) -> Finding:
    obj = await api.retrieve(f"/v1/transfers/{transfer_id}")
    if obj is None:
        return Finding(label, age, f"transfer {transfer_id} not found at Stripe")
    if obj.get("reversed"):
        return Finding(label, age, f"transfer {transfer_id} was reversed at Stripe: nothing to settle")
    return Finding(label, age, f"transfer {transfer_id} exists at Stripe", sync_event("transfer.created", obj, "created"))


async def _payment_intent(api: StripeApi, label: str, age: float, intent_id: str) -> Finding:
    obj = await api.retrieve(f"/v1/payment_intents/{intent_id}")
    if obj is None:
        return Finding(label, age, f"payment intent {intent_id} not found at Stripe")
    status = str(obj.get("status"))
    if status == "succeeded":
        event = sync_event("payment_intent.succeeded", obj, status)
    elif status in _FAILED_INTENT and (obj.get("last_payment_error") or status == "canceled"):
        event = sync_event("payment_intent.payment_failed", obj, status)
    else:
        return Finding(label, age, f"payment intent {intent_id} is still {status} at Stripe")
    return Finding(label, age, f"payment intent {intent_id} is {status} at Stripe", event)


async def _subscription(api: StripeApi, label: str, age: float, subscription_id: str) -> Finding:
    obj = await api.retrieve(f"/v1/subscriptions/{subscription_id}")
    if obj is None:
        return Finding(label, age, f"subscription {subscription_id} not found at Stripe")
    status = str(obj.get("status"))
    if status in _STILL_PENDING_SUBSCRIPTION:
        return Finding(label, age, f"subscription {subscription_id} is still {status} at Stripe")
    event_type = "customer.subscription.deleted" if status == "incomplete_expired" else "customer.subscription.updated"
    return Finding(label, age, f"subscription {subscription_id} is {status} at Stripe", sync_event(event_type, obj, status))
