"""Exactly-once in effect: duplicates, concurrent workers and late registration."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import dramatiq
import pytest

from api.settings import Settings
from models import registration
from models.enums import DebtStatus as D
from models.enums import WebhookEventStatus as S
from models.audit import verify_chain
from models.tables import AuditEntry, Debt, Payment, WebhookEvent
from tasks.actors import reconcile_event
from tasks.handlers import HANDLERS
from tasks.reconcile import reconcile, reconcile_batch
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


async def test_a_batch_applies_each_event_once_and_waits_for_no_one(db: Settings) -> None:
    tr1, tr2, tr3, pi2 = (se.unique_id(p) for p in ("tr", "tr", "tr", "pi"))
    d1 = await create_pending_settlement(transfer_id=tr1, amount_cents=1100)
    d2 = await create_pending_settlement(transfer_id=tr2, payment_intent_id=pi2, amount_cents=1100)
    d3 = await create_pending_settlement(transfer_id=tr3, amount_cents=1100)
    events = [
        se.event("transfer.created", se.transfer(id=tr1, amount=1100)),
        se.event("payment_intent.succeeded", se.payment_intent(id=pi2, amount=1100)),
        se.event("transfer.created", se.transfer(id=tr2, amount=1100)),  # same money, same record
        se.event("transfer.created", se.transfer(id=tr3, amount=1100)),
        se.event("customer.created", {"id": "cus_b", "object": "customer"}),
    ]
    for evt in events:
        await store(evt)
    ids = [e["id"] for e in events]
    if not db.distributed:
        results = await reconcile_batch(ids + ids[:2], db)
    else:
        # Another transaction holds d3: the batch must not wait for it, and apply it after.
        holder = await asyncpg.connect(db.database_url.replace("postgres://", "postgresql://"))
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT 1 FROM debt WHERE id = $1 FOR UPDATE", d3.id)
        batch = asyncio.create_task(reconcile_batch(ids + ids[:2], db))

        async def others_done() -> bool:
            return await WebhookEvent.filter(id__in=ids[:3], status=S.PROCESSED).count() == 3

        await wait_until(others_done, timeout=20, message="the batch commits without the locked debt")
        assert (await WebhookEvent.get(id=ids[3])).status is S.RECEIVED
        await lock.rollback()
        await holder.close()
        results = await batch
    assert [results[i] for i in ids] == [S.PROCESSED] * 4 + [S.IGNORED]
    for debt in (d1, d2, d3):
        assert (await Debt.get(id=debt.id)).status is D.SETTLED
        assert await Payment.filter(debt_id=debt.id).count() == 1
    assert (await verify_chain()).first_broken_id is None


async def test_a_failing_event_does_not_sink_its_batch(db: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    good_tr, bad_pi = se.unique_id("tr"), se.unique_id("pi")
    good = await create_pending_settlement(transfer_id=good_tr, amount_cents=1100)
    await create_pending_settlement(payment_intent_id=bad_pi, amount_cents=1100)

    async def explode(tx: Any, event: WebhookEvent, payload: Any) -> Any:
        raise RuntimeError("handler bug")

    monkeypatch.setitem(HANDLERS, "payment_intent.succeeded", explode)
    events = [
        se.event("transfer.created", se.transfer(id=good_tr, amount=1100)),
        se.event("payment_intent.succeeded", se.payment_intent(id=bad_pi, amount=1100)),
    ]
    for evt in events:
        await store(evt)
    results = await reconcile_batch([e["id"] for e in events], db)
    assert results[events[0]["id"]] is S.PROCESSED and results[events[1]["id"]] is S.RETRYING
    assert (await Debt.get(id=good.id)).status is D.SETTLED
    bad = await WebhookEvent.get(id=events[1]["id"])
    assert bad.failures == 1 and "handler bug" in (bad.last_error or "")
