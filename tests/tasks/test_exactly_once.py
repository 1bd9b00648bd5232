"""Exactly-once in effect: duplicates, concurrent workers and late registration."""

from __future__ import annotations

import asyncio

import dramatiq
import pytest

from api.settings import Settings
from models import registration
from models.enums import DebtStatus as D
from models.enums import WebhookEventStatus as S
from models.tables import AuditEntry, Debt, Payment, WebhookEvent
from tasks.actors import reconcile_event
from tasks.reconcile import reconcile
from tests.fixtures import stripe_events as se
from tests.fixtures.records import ACTOR, create_debt, create_pending_settlement
from tests.fixtures.services import wait_until
from tests.tasks.inbox import store


async def test_one_event_delivered_20_times_concurrently_has_one_effect(db: Settings) -> None:
    tr = se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    evt = se.event("transfer.created", se.transfer(id=tr, amount=1100))
    stored = await asyncio.gather(*(store(evt) for _ in range(20)))
    assert stored.count(True) == 1
    results = await asyncio.gather(*(reconcile(evt["id"], db) for _ in range(20)))
    assert results.count(S.PROCESSED) == 1 and results.count(None) == 19
    assert (await Debt.get(id=debt.id)).status is D.SETTLED
    assert await Payment.filter(stripe_object_id=tr).count() == 1
    assert await AuditEntry.filter(entity_type="Debt", entity_id=str(debt.id), to_status="SETTLED").count() == 1
    assert await AuditEntry.filter(event_id=evt["id"], to_status="PROCESSED").count() == 1


async def test_two_event_types_for_one_money_concurrently_settle_once(db: Settings) -> None:
    pi, tr = se.unique_id("pi"), se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, payment_intent_id=pi, amount_cents=1100)
    events = [
        se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=1100)),
        se.event("transfer.created", se.transfer(id=tr, amount=1100)),
    ]
    for evt in events:
        await store(evt)
    await asyncio.gather(*(reconcile(e["id"], db) for e in events for _ in range(5)))
    assert (await Debt.get(id=debt.id)).status is D.SETTLED
    assert await Payment.filter(debt_id=debt.id).count() == 1
    for e in events:
        assert (await WebhookEvent.get(id=e["id"])).status is S.PROCESSED


async def test_late_registration_settles_within_a_second(
    db: Settings, broker: dramatiq.Broker, worker: dramatiq.Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    tr = se.unique_id("tr")
    evt = se.event("transfer.created", se.transfer(id=tr, amount=1100))
    # A long backoff: only the re-enqueue on registration can settle it in time.
    slow = db.model_copy(update={"retry_base_s": 60.0, "retry_max_s": 600.0})
    monkeypatch.setattr("tasks.reconcile.get_settings", lambda: slow)
    await store(evt)
    await asyncio.to_thread(reconcile_event.send, evt["id"])

    async def waiting() -> bool:
        return (await WebhookEvent.get(id=evt["id"])).status is S.RETRYING

    await wait_until(waiting, timeout=10, message="event waits for its transfer")
    event = await WebhookEvent.get(id=evt["id"])
    debt = await create_debt(amount_cents=1100)
    await registration.register_settlement(debt.id, transfer_id=tr, actor=ACTOR)

    async def settled() -> bool:
        return (await Debt.get(id=debt.id)).status is D.SETTLED

    await wait_until(settled, timeout=1.0, message="debt settled within a second of registration")
    assert event.next_attempt_at is not None
