"""SPEC section 5, row by row: each event type's effect, its Payment row, its audit entry."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from api.settings import Settings
from models.audit import verify_chain
from models.enums import DebtStatus as D
from models.enums import PaymentKind, PaymentStatus
from models.enums import ProSubscriptionStatus as P
from models.enums import WebhookEventStatus as S
from models.tables import AuditEntry, Debt, Payment, ProSubscription
from tests.fixtures import stripe_events as se
from tests.fixtures.records import create_pending_settlement, create_pro_subscription
from tests.tasks.inbox import deliver


async def status_entry(entity: str, record_id: int, event_id: str) -> AuditEntry:
    return await AuditEntry.get(entity_type=entity, entity_id=str(record_id), event_id=event_id)


@pytest.mark.parametrize("shape", ["new", "old"])
@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_succeeded"])
async def test_invoice_paid_activates_pending_subscription(db: Settings, shape: str, event_type: str) -> None:
    sub = await create_pro_subscription()
    build = se.invoice_new_shape if shape == "new" else se.invoice_old_shape
    end = 1_900_000_000
    invoice = build(subscription=sub.stripe_subscription_id, payment_intent=se.unique_id("pi"), amount=999, period_end=end)
    evt = await deliver(se.event(event_type, invoice), db)

    assert evt.status is S.PROCESSED
    sub = await ProSubscription.get(id=sub.id)
    assert sub.status is P.ACTIVE and sub.activated_at is not None
    assert sub.current_period_end == datetime.fromtimestamp(end, timezone.utc)
    payment = await Payment.get(event_id=evt.id)
    assert (payment.kind, payment.status, payment.amount_cents, payment.currency) == (
        PaymentKind.SUBSCRIPTION, PaymentStatus.SUCCEEDED, 999, "usd")
    assert payment.user_id == sub.user_id
    entry = await status_entry("ProSubscription", sub.id, evt.id)
    assert (entry.from_status, entry.to_status, entry.actor) == ("PENDING", "ACTIVE", "stripe")
    assert (await verify_chain()).first_broken_id is None


async def test_invoice_paid_without_payments_matches_by_subscription(db: Settings) -> None:
    sub = await create_pro_subscription()
    invoice = se.invoice_new_shape(subscription=sub.stripe_subscription_id, payment_intent=None)
    assert "payments" not in invoice
    evt = await deliver(se.event("invoice.paid", invoice), db)
    assert evt.status is S.PROCESSED
    assert (await ProSubscription.get(id=sub.id)).status is P.ACTIVE
    assert (await Payment.get(event_id=evt.id)).stripe_object_id == invoice["id"]


async def test_invoice_paid_on_active_is_a_renewal(db: Settings) -> None:
    sub = await create_pro_subscription()
    first = se.invoice_new_shape(subscription=sub.stripe_subscription_id, payment_intent=se.unique_id("pi"), period_end=1_900_000_000)
    await deliver(se.event("invoice.paid", first, created=1_800_000_000), db)
    renewal = se.invoice_new_shape(subscription=sub.stripe_subscription_id, payment_intent=se.unique_id("pi"), period_end=1_902_600_000)
    evt = await deliver(se.event("invoice.paid", renewal, created=1_800_000_100), db)

    sub = await ProSubscription.get(id=sub.id)
    assert evt.status is S.PROCESSED and sub.status is P.ACTIVE
    assert sub.current_period_end == datetime.fromtimestamp(1_902_600_000, timezone.utc)
    assert await Payment.filter(pro_subscription_id=sub.id, status=PaymentStatus.SUCCEEDED).count() == 2
    assert (await status_entry("ProSubscription", sub.id, evt.id)).action == "renewed"


@pytest.mark.parametrize("shape", ["new", "old"])
async def test_invoice_payment_failed_moves_active_to_past_due(db: Settings, shape: str) -> None:
    sub = await create_pro_subscription()
    build = se.invoice_new_shape if shape == "new" else se.invoice_old_shape
    await deliver(se.event("invoice.paid", build(subscription=sub.stripe_subscription_id), created=1_800_000_000), db)
    failed = build(subscription=sub.stripe_subscription_id, payment_intent=se.unique_id("pi"), amount=999, paid=False)
    evt = await deliver(se.event("invoice.payment_failed", failed, created=1_800_000_100), db)

    assert (await ProSubscription.get(id=sub.id)).status is P.PAST_DUE
    payment = await Payment.get(event_id=evt.id)
    assert (payment.status, payment.amount_cents) == (PaymentStatus.FAILED, 999)
    entry = await status_entry("ProSubscription", sub.id, evt.id)
    assert (entry.from_status, entry.to_status) == ("ACTIVE", "PAST_DUE")


async def test_invoice_payment_failed_leaves_pending_pending_but_records_payment(db: Settings) -> None:
    sub = await create_pro_subscription()
    failed = se.invoice_new_shape(subscription=sub.stripe_subscription_id, paid=False)
    evt = await deliver(se.event("invoice.payment_failed", failed), db)
    assert evt.status is S.PROCESSED
    assert (await ProSubscription.get(id=sub.id)).status is P.PENDING
    assert (await Payment.get(event_id=evt.id)).status is PaymentStatus.FAILED


@pytest.mark.parametrize(
    ("stripe_status", "expected"),
    [("active", P.ACTIVE), ("trialing", P.ACTIVE), ("past_due", P.PAST_DUE), ("unpaid", P.PAST_DUE),
     ("canceled", P.CANCELED), ("incomplete", P.PENDING)],
)
async def test_subscription_updated_maps_stripe_status(db: Settings, stripe_status: str, expected: P) -> None:
    sub = await create_pro_subscription()
    obj = se.subscription(id=sub.stripe_subscription_id, status=stripe_status)
    evt = await deliver(se.event("customer.subscription.updated", obj), db)
    assert evt.status is S.PROCESSED
    assert (await ProSubscription.get(id=sub.id)).status is expected
    assert await Payment.filter(event_id=evt.id).count() == 0


async def test_subscription_deleted_cancels(db: Settings) -> None:
    sub = await create_pro_subscription()
    evt = await deliver(se.event("customer.subscription.deleted", se.subscription(id=sub.stripe_subscription_id, status="canceled")), db)
    assert (await ProSubscription.get(id=sub.id)).status is P.CANCELED
    entry = await status_entry("ProSubscription", sub.id, evt.id)
    assert (entry.from_status, entry.to_status) == ("PENDING", "CANCELED")


async def test_payment_intent_succeeded_settles_debt(db: Settings) -> None:
    pi = se.unique_id("pi")
    debt = await create_pending_settlement(payment_intent_id=pi, amount_cents=1099)
    evt = await deliver(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=1099)), db)
    debt = await Debt.get(id=debt.id)
    assert debt.status is D.SETTLED and debt.settled_at is not None
    payment = await Payment.get(event_id=evt.id)
    assert (payment.kind, payment.status, payment.amount_cents, payment.stripe_object_id, payment.user_id) == (
        PaymentKind.SETTLEMENT, PaymentStatus.SUCCEEDED, 1099, pi, debt.debtor_id)
    entry = await status_entry("Debt", debt.id, evt.id)
    assert (entry.from_status, entry.to_status) == ("PENDING_SETTLEMENT", "SETTLED")


async def test_payment_intent_succeeded_activates_subscription(db: Settings) -> None:
    pi = se.unique_id("pi")
    sub = await create_pro_subscription(payment_intent_id=pi)
    evt = await deliver(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=999)), db)
    assert (await ProSubscription.get(id=sub.id)).status is P.ACTIVE
    assert (await Payment.get(event_id=evt.id)).kind is PaymentKind.SUBSCRIPTION


async def test_invoice_payment_paid_acts_as_payment_intent_succeeded(db: Settings) -> None:
    pi = se.unique_id("pi")
    debt = await create_pending_settlement(payment_intent_id=pi, amount_cents=999)
    evt = await deliver(se.event("invoice_payment.paid", se.invoice_payment(payment_intent=pi, amount=999)), db)
    assert (await Debt.get(id=debt.id)).status is D.SETTLED
    assert (await Payment.get(event_id=evt.id)).stripe_object_id == pi


async def test_payment_intent_failed_marks_settlement_failed(db: Settings) -> None:
    pi = se.unique_id("pi")
    debt = await create_pending_settlement(payment_intent_id=pi, amount_cents=1099)
    evt = await deliver(se.event("payment_intent.payment_failed", se.payment_intent(id=pi, amount=1099, succeeded=False)), db)
    assert (await Debt.get(id=debt.id)).status is D.SETTLEMENT_FAILED
    assert (await Payment.get(event_id=evt.id)).status is PaymentStatus.FAILED
    entry = await status_entry("Debt", debt.id, evt.id)
    assert (entry.from_status, entry.to_status) == ("PENDING_SETTLEMENT", "SETTLEMENT_FAILED")


@pytest.mark.parametrize("event_type", ["transfer.created", "transfer.succeeded", "transfer.paid"])
async def test_transfer_settles_debt(db: Settings, event_type: str) -> None:
    tr = se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    evt = await deliver(se.event(event_type, se.transfer(id=tr, amount=1100)), db)
    assert (await Debt.get(id=debt.id)).status is D.SETTLED
    payment = await Payment.get(event_id=evt.id)
    assert (payment.status, payment.stripe_object_id, payment.debt_id) == (PaymentStatus.SUCCEEDED, tr, debt.id)


async def test_full_transfer_reversal_reopens_and_partial_does_not(db: Settings) -> None:
    tr = se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    await deliver(se.event("transfer.created", se.transfer(id=tr, amount=1100), created=1_800_000_000), db)
    partial = await deliver(se.event("transfer.reversed", se.transfer(id=tr, amount=1100, reversed_amount=500), created=1_800_000_010), db)
    assert partial.status is S.PROCESSED and (await Debt.get(id=debt.id)).status is D.SETTLED
    full = await deliver(se.event("transfer.reversed", se.transfer(id=tr, amount=1100, reversed_amount=1100), created=1_800_000_020), db)
    debt = await Debt.get(id=debt.id)
    assert debt.status is D.OPEN and debt.settled_at is None
    payment = await Payment.get(event_id=full.id)
    assert (payment.status, payment.amount_cents) == (PaymentStatus.REVERSED, 1100)
    entry = await status_entry("Debt", debt.id, full.id)
    assert (entry.from_status, entry.to_status, entry.action) == ("SETTLED", "OPEN", "reversed")


async def test_other_types_are_ignored(db: Settings) -> None:
    evt = await deliver(se.event("customer.created", {"id": "cus_1", "object": "customer"}), db)
    assert evt.status is S.IGNORED
    assert await AuditEntry.filter(event_id=evt.id, action="ignored").exists()
