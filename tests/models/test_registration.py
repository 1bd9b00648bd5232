"""Registration: the domain functions GraphQL mutations call."""

from __future__ import annotations

import pytest

from api.settings import Settings
from models import registration
from models.audit import verify_chain
from models.balances import group_balances
from models.changes import StatusChange, set_publisher
from models.enums import DebtStatus, ProSubscriptionStatus
from models.errors import Conflict, InvalidInput, NotFound, TransitionNotAllowed, UserNotFound
from models.tables import AuditEntry
from tests.fixtures.records import ACTOR, create_debt, create_group, create_user


async def test_create_user_is_audited_and_email_is_unique(db: Settings) -> None:
    user = await create_user(email="Ann@Example.com", name="Ann")
    assert user.email == "ann@example.com"
    with pytest.raises(Conflict, match="ann@example.com"):
        await create_user(email="ann@example.com")
    entry = await AuditEntry.get(entity_type="User", entity_id=str(user.id))
    assert entry.action == "created" and entry.actor == ACTOR
    with pytest.raises(InvalidInput):
        await create_user(email="not-an-email")


async def test_record_debt_validates_and_publishes_open(db: Settings) -> None:
    seen: list[StatusChange] = []
    set_publisher(seen.extend)
    try:
        ann, bob, eve = await create_user(), await create_user(), await create_user()
        group = await create_group([ann, bob])
        debt = await registration.record_debt(group.id, ann.id, bob.id, 500, "EUR", actor=ACTOR)
    finally:
        set_publisher(None)
    assert debt.status is DebtStatus.OPEN and debt.currency == "eur"
    assert [(c.entity_type, c.entity_id, c.to_status) for c in seen] == [("Debt", str(debt.id), "OPEN")]
    assert seen[0].snapshot["amount_cents"] == 500
    with pytest.raises(InvalidInput, match="not a member"):
        await registration.record_debt(group.id, ann.id, eve.id, 500, actor=ACTOR)
    with pytest.raises(InvalidInput):
        await registration.record_debt(group.id, ann.id, bob.id, 0, actor=ACTOR)
    with pytest.raises(NotFound):
        await registration.record_debt(999_999, ann.id, bob.id, 10, actor=ACTOR)
    with pytest.raises(UserNotFound):
        await registration.create_group("g", [ann.id, 999_999], actor=ACTOR)


async def test_register_settlement_moves_open_to_pending_once(db: Settings) -> None:
    debt = await create_debt()
    with pytest.raises(InvalidInput):
        await registration.register_settlement(debt.id, actor=ACTOR)
    moved = await registration.register_settlement(debt.id, transfer_id="tr_reg_1", actor=ACTOR)
    assert moved.status is DebtStatus.PENDING_SETTLEMENT and moved.transfer_id == "tr_reg_1"
    with pytest.raises(TransitionNotAllowed):
        await registration.register_settlement(debt.id, transfer_id="tr_reg_2", actor=ACTOR)
    other = await create_debt()
    with pytest.raises(Conflict, match="tr_reg_1"):
        await registration.register_settlement(other.id, transfer_id="tr_reg_1", actor=ACTOR)
    assert (await verify_chain()).first_broken_id is None


async def test_register_pro_subscription_one_current_per_user(db: Settings) -> None:
    user = await create_user()
    sub = await registration.register_pro_subscription(user.id, "sub_reg_1", "cus_1", actor=ACTOR)
    assert sub.status is ProSubscriptionStatus.PENDING
    with pytest.raises(Conflict):
        await registration.register_pro_subscription(user.id, "sub_reg_2", actor=ACTOR)
    with pytest.raises(UserNotFound):
        await registration.register_pro_subscription(999_999, "sub_reg_3", actor=ACTOR)


async def test_balances_sum_to_zero_and_ignore_settled(db: Settings) -> None:
    ann, bob, cat = await create_user(), await create_user(), await create_user()
    group = await create_group([ann, bob, cat])
    await registration.record_debt(group.id, ann.id, bob.id, 300, actor=ACTOR)
    await registration.record_debt(group.id, cat.id, bob.id, 200, actor=ACTOR)
    await registration.record_debt(group.id, bob.id, ann.id, 50, "eur", actor=ACTOR)
    balances = {(b.user_id, b.currency): b.net_cents for b in await group_balances(group.id)}
    assert balances[(bob.id, "usd")] == 500 and balances[(ann.id, "usd")] == -300
    assert balances[(ann.id, "eur")] == 50 and balances[(cat.id, "eur")] == 0
    for currency in ("usd", "eur"):
        assert sum(v for (_, c), v in balances.items() if c == currency) == 0
