"""Registering what Trackit's app knows (users, groups, debts, the Stripe ids of a
payment to come), and the manual retry of an inbox event. Each call is one transaction
with its audit entries; status changes go through `models.ledger.transition`."""

from __future__ import annotations

import re

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from models.audit import AuditDraft
from models.changes import enqueue
from models.enums import DebtStatus, ProSubscriptionStatus
from models.enums import WebhookEventStatus as S
from models.errors import (
    Conflict,
    DebtNotFound,
    GroupNotFound,
    InvalidInput,
    UserNotFound,
    WebhookEventNotFound,
)
from models.inbox import event_snapshot, move_event
from models.ledger import transition
from models.snapshots import debt_snapshot, group_snapshot, pro_subscription_snapshot, user_snapshot
from models.tables import Debt, Group, GroupMember, ProSubscription, User, WebhookEvent
from models.unit_of_work import ledger_transaction

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[a-z]{3}$")
MAX_STRIPE_ID = 255


async def create_user(email: str, name: str, *, actor: str) -> User:
    """Create a user; the email is unique (case-insensitive)."""
    email, name = email.strip().lower(), name.strip()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput(f"email {email!r} is not a valid address")
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters")
    if await User.filter(email=email).exists():
        raise Conflict(f"email {email} is already used by another user")
    try:
        async with ledger_transaction() as tx:
            user = await User.create(email=email, name=name, using_db=tx.conn)
            tx.audit(_created(actor, "User", user.id, user_snapshot(user)))
    except IntegrityError:
        raise Conflict(f"email {email} is already used by another user") from None
    return user


async def create_group(name: str, member_ids: list[int], *, actor: str) -> Group:
    """Create a group with these members (at least one; every id an existing user)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("group name must be 1 to 200 characters")
    members = list(dict.fromkeys(member_ids))
    if not members:
        raise InvalidInput("a group needs at least one member")
    found = set(await User.filter(id__in=members).values_list("id", flat=True))
    for user_id in members:
        if user_id not in found:
            raise UserNotFound(user_id)
    async with ledger_transaction() as tx:
        group = await Group.create(name=name, using_db=tx.conn)
        await GroupMember.bulk_create(
            [GroupMember(group_id=group.id, user_id=user_id) for user_id in members], using_db=tx.conn
        )
        tx.audit(_created(actor, "Group", group.id, group_snapshot(group, members)))
    return group


async def record_debt(
    group_id: int,
    debtor_id: int,
    creditor_id: int,
    amount_cents: int,
    currency: str = "usd",
    *,
    actor: str,
) -> Debt:
    """Record that `debtor` owes `creditor` in `group`: a new OPEN debt."""
    currency = currency.strip().lower()
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool) or amount_cents <= 0:
        raise InvalidInput(f"amountCents must be a positive integer, not {amount_cents!r}")
    if amount_cents > 2**53:
        raise InvalidInput("amountCents is too large")
    if not _CURRENCY.match(currency):
        raise InvalidInput(f"currency {currency!r} is not a three-letter ISO code")
    if debtor_id == creditor_id:
        raise InvalidInput("debtor and creditor must be two different users")
    if not await Group.filter(id=group_id).exists():
        raise GroupNotFound(group_id)
    for user_id in (debtor_id, creditor_id):
        if not await User.filter(id=user_id).exists():
            raise UserNotFound(user_id)
        if not await GroupMember.filter(group_id=group_id, user_id=user_id).exists():
            raise InvalidInput(f"user {user_id} is not a member of group {group_id}")
    async with ledger_transaction() as tx:
        debt = await Debt.create(
            group_id=group_id, debtor_id=debtor_id, creditor_id=creditor_id,
            amount_cents=amount_cents, currency=currency, status=DebtStatus.OPEN, using_db=tx.conn,
        )
        tx.audit(
            _created(actor, "Debt", debt.id, debt_snapshot(debt), to_status=DebtStatus.OPEN.value)
        )
    return debt


async def register_pro_subscription(
    user_id: int,
    stripe_subscription_id: str,
    stripe_customer_id: str | None = None,
    payment_intent_id: str | None = None,
    *,
    actor: str,
) -> ProSubscription:
    """Register the Stripe subscription a user is paying for: a PENDING ProSubscription."""
    sub_id = _stripe_id("stripeSubscriptionId", stripe_subscription_id)
    customer_id = _optional_id("stripeCustomerId", stripe_customer_id)
    intent_id = _optional_id("paymentIntentId", payment_intent_id)
    if sub_id is None:
        raise InvalidInput("stripeSubscriptionId is required")
    if not await User.filter(id=user_id).exists():
        raise UserNotFound(user_id)
    async with ledger_transaction() as tx:
        # Lock the user's subscriptions so two registrations for one user serialise.
        current = await (
            ProSubscription.filter(user_id=user_id).using_db(tx.conn).select_for_update().order_by("-id")
        )
        live = [s for s in current if s.status is not ProSubscriptionStatus.CANCELED]
        if live:
            raise Conflict(
                f"user {user_id} already has Pro subscription {live[0].id} ({live[0].status.value})"
            )
        if await ProSubscription.filter(stripe_subscription_id=sub_id).using_db(tx.conn).exists():
            raise Conflict(f"Stripe subscription {sub_id} is already registered")
        if intent_id is not None:
            await _ensure_intent_unused(tx.conn, intent_id)
        sub = await ProSubscription.create(
            user_id=user_id, status=ProSubscriptionStatus.PENDING, stripe_subscription_id=sub_id,
            stripe_customer_id=customer_id, payment_intent_id=intent_id, using_db=tx.conn,
        )
        tx.audit(
            _created(
                actor, "ProSubscription", sub.id, pro_subscription_snapshot(sub),
                to_status=ProSubscriptionStatus.PENDING.value,
            )
        )
    await requeue_waiting([i for i in (sub_id, intent_id) if i])
    return sub


async def register_settlement(
    debt_id: int,
    transfer_id: str | None = None,
    payment_intent_id: str | None = None,
    *,
    actor: str,
) -> Debt:
    """Register the Stripe transfer and/or payment intent settling a debt: OPEN or
    SETTLEMENT_FAILED -> PENDING_SETTLEMENT."""
    transfer = _optional_id("transferId", transfer_id)
    intent = _optional_id("paymentIntentId", payment_intent_id)
    if transfer is None and intent is None:
        raise InvalidInput("registerSettlement needs a transferId or a paymentIntentId")
    async with ledger_transaction() as tx:
        debt = await Debt.filter(id=debt_id).using_db(tx.conn).select_for_update().first()
        if debt is None:
            raise DebtNotFound(debt_id)
        if transfer is not None and transfer != debt.transfer_id:
            if await Debt.filter(transfer_id=transfer).exclude(id=debt_id).using_db(tx.conn).exists():
                raise Conflict(f"transfer {transfer} is already registered for another debt")
        if intent is not None and intent != debt.payment_intent_id:
            await _ensure_intent_unused(tx.conn, intent, except_debt=debt_id)
        await transition(
            tx, debt, DebtStatus.PENDING_SETTLEMENT, actor=actor,
            fields={"transfer_id": transfer, "payment_intent_id": intent},
        )
    await requeue_waiting([i for i in (transfer, intent) if i])
    return debt


async def retry_webhook_event(event_id: str, *, actor: str) -> WebhookEvent:
    """Send a DEAD or RETRYING event back to RECEIVED and enqueue it after commit."""
    async with ledger_transaction() as tx:
        event = await WebhookEvent.filter(id=event_id).using_db(tx.conn).select_for_update().first()
        if event is None:
            raise WebhookEventNotFound(event_id)
        if event.status in (S.PROCESSED, S.IGNORED):
            raise Conflict(f"webhook event {event_id} is {event.status.value}: nothing to retry")
        if event.status in (S.DEAD, S.RETRYING):
            await move_event(tx, event, S.RECEIVED, actor=actor, action="manual_retry", count_attempt=False)
        else:
            # Already RECEIVED (e.g. stranded while the broker was down): send it again.
            snap = event_snapshot(event)
            tx.audit(
                AuditDraft(actor=actor, action="manual_retry", entity_type="WebhookEvent",
                           entity_id=event.id, before=snap, after=snap, event_id=event.id)
            )
        tx.enqueue_after_commit(event.id)
    return event


async def requeue_waiting(stripe_ids: list[str]) -> list[str]:
    """Enqueue at once the RETRYING events waiting for any of `stripe_ids`.

    Runs after the registration's commit: a reconciliation that committed RETRYING
    before is found here; one that commits later sees the record itself (reconcile
    re-checks after its commit), so no event waits out its backoff needlessly."""
    wanted = set(stripe_ids)
    if not wanted:
        return []
    query = WebhookEvent.filter(status=S.RETRYING)
    candidates: set[str] = set()
    for stripe_id in wanted:
        rows = await query.filter(waiting_for__contains=stripe_id).values_list("id", "waiting_for")
        candidates.update(str(eid) for eid, waiting in rows if wanted & set(str(waiting or "").split()))
    ids = sorted(candidates)
    enqueue(ids)
    return ids


def _created(
    actor: str, entity: str, entity_id: int, after: dict[str, object], to_status: str | None = None
) -> AuditDraft:
    return AuditDraft(
        actor=actor, action="created", entity_type=entity, entity_id=str(entity_id),
        after=after, to_status=to_status,
    )


def _stripe_id(label: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_STRIPE_ID or any(c.isspace() for c in value):
        raise InvalidInput(f"{label} {value!r} is not a Stripe id")
    return value


def _optional_id(label: str, value: str | None) -> str | None:
    return None if value is None or value.strip() == "" else _stripe_id(label, value)


async def _ensure_intent_unused(
    conn: BaseDBAsyncClient, intent: str, except_debt: int | None = None
) -> None:
    debts = Debt.filter(payment_intent_id=intent)
    if except_debt is not None:
        debts = debts.exclude(id=except_debt)
    if await debts.using_db(conn).exists() or await ProSubscription.filter(
        payment_intent_id=intent
    ).using_db(conn).exists():
        raise Conflict(f"payment intent {intent} is already registered for another record")
