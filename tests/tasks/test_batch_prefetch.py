"""A batch reads its events' records ahead, one statement per table: two events of one
batch that change the same record see each other's effect, in order."""

from __future__ import annotations

import time

from api.settings import Settings
from models.audit import verify_chain
from models.enums import DebtStatus as D
from models.enums import PaymentStatus
from models.enums import WebhookEventStatus as S
from models.tables import AuditEntry, Debt, Payment
from models.unit_of_work import ledger_transaction
from tasks.handlers.lookup import debt_by_intent, debt_by_transfer, prefetch_records
from tasks.reconcile import reconcile_batch
from tests.fixtures import stripe_events as se
from tests.fixtures.records import create_pending_settlement
from tests.tasks.inbox import store


async def test_a_settlement_and_its_reversal_in_one_batch_apply_in_order(db: Settings) -> None:
    tr = se.unique_id("tr")
    debt = await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    now = int(time.time())
    # A batch takes its events in id order: these ids sort as they happened.
    settled = se.event("transfer.created", se.transfer(id=tr, amount=1100), id=f"evt_{tr}_1", created=now)
    reversed_ = se.event(
        "transfer.reversed", se.transfer(id=tr, amount=1100, reversed_amount=1100), id=f"evt_{tr}_2", created=now + 1
    )
    for evt in (settled, reversed_):
        await store(evt)
    results = await reconcile_batch([settled["id"], reversed_["id"]], db)
    assert results == {settled["id"]: S.PROCESSED, reversed_["id"]: S.PROCESSED}
    assert (await Debt.get(id=debt.id)).status is D.OPEN
    statuses = sorted(p.status.value for p in await Payment.filter(debt_id=debt.id))
    assert statuses == sorted([PaymentStatus.SUCCEEDED.value, PaymentStatus.REVERSED.value])
    moves = await AuditEntry.filter(entity_type="Debt", entity_id=str(debt.id), to_status__not_isnull=True).order_by("id")
    assert [(m.from_status, m.to_status) for m in moves][-2:] == [("PENDING_SETTLEMENT", "SETTLED"), ("SETTLED", "OPEN")]
    assert (await verify_chain()).first_broken_id is None


async def test_one_row_read_under_two_keys_is_one_instance(db: Settings) -> None:
    if not db.distributed:
        return  # the read-ahead is PostgreSQL's (SQLite reconciles event by event)
    tr, pi = se.unique_id("tr"), se.unique_id("pi")
    debt = await create_pending_settlement(transfer_id=tr, payment_intent_id=pi, amount_cents=1100)
    async with ledger_transaction() as tx:
        tx.skip_locked = True
        await prefetch_records(tx, [(Debt, "transfer_id", tr), (Debt, "payment_intent_id", pi)])
        by_transfer, by_intent = await debt_by_transfer(tx, tr), await debt_by_intent(tx, pi)
        assert by_transfer is not None and by_transfer.id == debt.id
        assert by_transfer is by_intent
