"""SPEC section 5 rules for every event: order, not-yet-known, amounts, failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from api.settings import Settings
from models import registration
from models.changes import set_enqueuer
from models.enums import DebtStatus as D
from models.enums import PaymentStatus
from models.enums import ProSubscriptionStatus as P
from models.enums import WebhookEventStatus as S
from models.tables import AuditEntry, Debt, Payment, ProSubscription, WebhookEvent
from tasks.handlers import HANDLERS
from tasks.reconcile import reconcile
from tests.fixtures import stripe_events as se
from tests.fixtures.records import ACTOR, create_debt, create_pending_settlement, create_pro_subscription
from tests.tasks.inbox import deliver, store

T = 1_800_000_000


@pytest.fixture
def enqueued() -> Iterator[list[str]]:
    ids: list[str] = []
    set_enqueuer(ids.append)
    yield ids
    set_enqueuer(None)


async def test_older_payment_failed_after_paid_is_stale(db: Settings) -> None:
    sub = await create_pro_subscription()
    paid = se.invoice_new_shape(subscription=sub.stripe_subscription_id)
    await deliver(se.event("invoice.paid", paid, created=T), db)
    failed = se.invoice_new_shape(subscription=sub.stripe_subscription_id, paid=False)
    evt = await deliver(se.event("invoice.payment_failed", failed, created=T - 60), db)

    assert evt.status is S.PROCESSED
    assert (await ProSubscription.get(id=sub.id)).status is P.ACTIVE
    assert not await Payment.filter(event_id=evt.id).exists()
    entry = await AuditEntry.get(event_id=evt.id, entity_type="WebhookEvent")
    assert entry.action == "stale_event" and "older" in (entry.after or {})["note"]


@pytest.mark.parametrize("order", ["failed_first", "succeeded_first"])
async def test_same_second_debt_events_follow_the_machine(db: Settings, order: str) -> None:
    pi = se.unique_id("pi")
    debt = await create_pending_settlement(payment_intent_id=pi, amount_cents=1099)
    ok = se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=1099), created=T)
    ko = se.event("payment_intent.payment_failed", se.payment_intent(id=pi, amount=1099, succeeded=False), created=T)
    for evt in ([ko, ok] if order == "failed_first" else [ok, ko]):
        assert (await deliver(evt, db)).status is S.PROCESSED
    # PENDING_SETTLEMENT -> SETTLEMENT_FAILED -> SETTLED, or SETTLED and the failure refused.
    assert (await Debt.get(id=debt.id)).status is D.SETTLED


@pytest.mark.parametrize("order", ["paid_first", "deleted_first"])
async def test_same_second_subscription_events_follow_the_machine(db: Settings, order: str) -> None:
    sub = await create_pro_subscription()
    paid = se.event("invoice.paid", se.invoice_new_shape(subscription=sub.stripe_subscription_id), created=T)
    deleted = se.event("customer.subscription.deleted", se.subscription(id=sub.stripe_subscription_id), created=T)
    for evt in ([paid, deleted] if order == "paid_first" else [deleted, paid]):
        await deliver(evt, db)
    assert (await ProSubscription.get(id=sub.id)).status is P.CANCELED


async def test_same_money_through_two_event_types_is_one_payment(db: Settings) -> None:
    pi = se.unique_id("pi")
    sub = await create_pro_subscription(payment_intent_id=pi)
    invoice = se.invoice_new_shape(subscription=sub.stripe_subscription_id, payment_intent=pi, amount=999)
    await deliver(se.event("invoice.paid", invoice, created=T), db)
    again = await deliver(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=999), created=T), db)
    assert again.status is S.PROCESSED
    assert await Payment.filter(stripe_object_id=pi).count() == 1
    assert (await AuditEntry.get(event_id=again.id, entity_type="WebhookEvent")).action == "no_change"


async def test_settled_is_left_only_by_a_reversal(db: Settings) -> None:
    pi = se.unique_id("pi")
    debt = await create_pending_settlement(payment_intent_id=pi, amount_cents=1099)
    await deliver(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=1099), created=T), db)
    later = await deliver(
        se.event("payment_intent.payment_failed", se.payment_intent(id=pi, amount=1099, succeeded=False), created=T + 5), db
    )
    assert later.status is S.PROCESSED and (await Debt.get(id=debt.id)).status is D.SETTLED
    with pytest.raises(Exception, match="not allowed"):
        await registration.register_settlement(debt.id, transfer_id="tr_again", actor=ACTOR)


async def test_unknown_id_waits_with_backoff_then_registration_requeues(db: Settings, enqueued: list[str]) -> None:
    tr = se.unique_id("tr")
    evt = se.event("transfer.created", se.transfer(id=tr, amount=1100))
    first = await deliver(evt, db)
    assert first.status is S.RETRYING and first.waiting_for == tr and tr in (first.last_error or "")
    assert first.next_attempt_at is not None
    await reconcile(evt["id"], db)
    second = await WebhookEvent.get(id=evt["id"])
    assert second.status is S.RETRYING and second.next_attempt_at is not None
    assert second.next_attempt_at > first.next_attempt_at  # exponential: the wait grows

    debt = await create_debt(amount_cents=1100)
    await registration.register_settlement(debt.id, transfer_id=tr, actor=ACTOR)
    assert evt["id"] in enqueued
    await reconcile(evt["id"], db)
    assert (await Debt.get(id=debt.id)).status is D.SETTLED


async def test_unknown_id_goes_dead_when_the_match_window_closes(db: Settings) -> None:
    closed = db.model_copy(update={"match_window_s": 0})
    evt = await deliver(se.event("transfer.created", se.transfer(amount=1100)), closed)
    assert evt.status is S.DEAD and "match window" in (evt.last_error or "")


async def test_amount_mismatch_goes_dead_at_once_and_alerts(db: Settings, caplog: pytest.LogCaptureFixture) -> None:
    tr = se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    with caplog.at_level(logging.ERROR, logger="trackit.alerts"):
        evt = await deliver(se.event("transfer.created", se.transfer(id=tr, amount=1000)), db)
    assert evt.status is S.DEAD and "mismatch" in (evt.last_error or "") and "1000" in (evt.last_error or "")
    assert (await Debt.get(id=debt.id)).status is D.PENDING_SETTLEMENT
    assert not await Payment.filter(event_id=evt.id).exists()
    assert any(evt.id in r.getMessage() for r in caplog.records)
    eur = se.unique_id("tr")
    await create_pending_settlement(transfer_id=eur, amount_cents=1100)
    wrong_currency = await deliver(se.event("transfer.created", se.transfer(id=eur, amount=1100, currency="eur")), db)
    assert wrong_currency.status is S.DEAD and "eur" in (wrong_currency.last_error or "")


async def test_handler_error_rolls_back_retries_then_dead_letters(
    db: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tr = se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    real = HANDLERS["transfer.created"]

    async def explode(tx: Any, event: WebhookEvent, payload: Any) -> Any:
        await real(tx, event, payload)  # the effect is written, then rolled back
        raise RuntimeError("database hiccup")

    monkeypatch.setitem(HANDLERS, "transfer.created", explode)
    settings = db.model_copy(update={"max_attempts": 3})
    evt = await deliver(se.event("transfer.created", se.transfer(id=tr, amount=1100)), settings)
    assert evt.status is S.RETRYING and evt.failures == 1 and "database hiccup" in (evt.last_error or "")
    assert (await Debt.get(id=debt.id)).status is D.PENDING_SETTLEMENT
    assert not await Payment.filter(event_id=evt.id).exists()
    with caplog.at_level(logging.ERROR, logger="trackit.alerts"):
        for _ in range(2):
            await reconcile(evt.id, settings)
    dead = await WebhookEvent.get(id=evt.id)
    assert dead.status is S.DEAD and dead.failures == 3
    assert await AuditEntry.filter(event_id=evt.id, action="dead_letter").exists()
    assert any(evt.id in r.getMessage() for r in caplog.records)

    monkeypatch.setitem(HANDLERS, "transfer.created", real)
    await registration.retry_webhook_event(evt.id, actor=ACTOR)
    await reconcile(evt.id, settings)
    assert (await Debt.get(id=debt.id)).status is D.SETTLED


def _malformed() -> list[tuple[str, dict[str, Any]]]:
    base = se.event("transfer.created", se.transfer(amount=1100))
    cases: list[tuple[str, dict[str, Any]]] = []
    no_object = {**base, "data": {}}
    cases.append(("no data.object", no_object))
    cases.append(("data is a list", {**base, "data": []}))
    null_id = se.event("transfer.created", {**se.transfer(), "id": None})
    cases.append(("null id", null_id))
    wrong_amount = se.event("transfer.created", {**se.transfer(), "amount": "1100"})
    cases.append(("amount as text", wrong_amount))
    int_id = se.event("payment_intent.succeeded", {**se.payment_intent(), "id": 42})
    cases.append(("numeric id", int_id))
    wrong_object = se.event("invoice.paid", se.payment_intent())
    cases.append(("wrong object", wrong_object))
    no_ids = se.event("invoice.paid", se.invoice_new_shape(subscription=None))
    cases.append(("invoice without ids", no_ids))
    no_created = {**se.event("transfer.created", se.transfer()), "created": None}
    cases.append(("no created", no_created))
    return cases


@pytest.mark.parametrize(("label", "evt"), _malformed(), ids=[c[0] for c in _malformed()])
async def test_malformed_payloads_go_dead_at_once(db: Settings, label: str, evt: dict[str, Any]) -> None:
    evt = {**evt, "id": se.unique_id("evt")}
    stored = await deliver(evt, db)
    assert stored.status is S.DEAD, label
    assert stored.last_error and stored.last_error.startswith("malformed payload")


async def test_payload_that_is_not_json_goes_dead(db: Settings) -> None:
    evt = se.event("transfer.created", se.transfer())
    from models.ingest import store_event

    await store_event(evt, "{not json")
    assert await reconcile(evt["id"], db) is S.DEAD
    assert "not JSON" in ((await WebhookEvent.get(id=evt["id"])).last_error or "")


async def test_processed_event_is_not_reapplied_and_cannot_be_retried(db: Settings) -> None:
    tr = se.unique_id("tr")
    await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    evt = se.event("transfer.created", se.transfer(id=tr, amount=1100))
    await deliver(evt, db)
    assert await reconcile(evt["id"], db) is None
    assert await store(evt) is False
    with pytest.raises(Exception, match="PROCESSED"):
        await registration.retry_webhook_event(evt["id"], actor=ACTOR)
    assert await Payment.filter(stripe_object_id=tr).count() == 1
