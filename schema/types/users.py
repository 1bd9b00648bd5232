"""Users, their Pro plan and their payment history."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from models import tables
from models.enums import ProSubscriptionStatus as SubStatus
from schema.context import Info
from schema.errors import NotFound
from schema.pagination import Connection, connection, decode_id_cursor, page_size
from schema.permissions import require_self_or_admin
from schema.types.enums import DebtStatus, PaymentKind, PaymentStatus, Plan, ProSubscriptionStatus
from schema.types.snapshots import parse_at, required_at

if TYPE_CHECKING:
    from schema.types.groups import Debt

PRO_STATUSES = (SubStatus.ACTIVE, SubStatus.PAST_DUE)


async def load_user(info: Info, user_id: int) -> User:
    """The user `user_id`, through the request's loader (it must exist)."""
    row = await info.context.loaders.user.load(user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return User.from_model(row)


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    name: str
    pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: tables.User) -> User:
        return cls(id=strawberry.ID(str(row.id)), email=row.email, name=row.name, pk=row.id)

    @strawberry.field(description="PRO while the current subscription is ACTIVE or PAST_DUE.")
    async def plan(self, info: Info) -> Plan:
        sub = await info.context.loaders.pro_subscription_of_user.load(self.pk)
        return Plan.PRO if sub is not None and sub.status in PRO_STATUSES else Plan.FREE

    @strawberry.field(description="The current (newest) Pro subscription; the user and admins only.")
    async def pro_subscription(self, info: Info) -> ProSubscription | None:
        require_self_or_admin(info.context, self.pk, "the Pro subscription")
        sub = await info.context.loaders.pro_subscription_of_user.load(self.pk)
        return ProSubscription.from_model(sub) if sub is not None else None

    @strawberry.field(description="Debts the user owes or is owed, newest first; the user and admins only.")
    async def debts(
        self, info: Info, status: DebtStatus | None = None
    ) -> list[Annotated[Debt, strawberry.lazy("schema.types.groups")]]:
        from schema.types.groups import Debt

        require_self_or_admin(info.context, self.pk, "the debts")
        rows = await info.context.loaders.debts_of_user.load(self.pk)
        return [Debt.from_model(d) for d in rows if status is None or d.status == status]

    @strawberry.field(description="The user's payment history, newest first; the user and admins only.")
    async def payments(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[Payment]:
        require_self_or_admin(info.context, self.pk, "the payments")
        return await payments_page(self.pk, first, after)


async def payments_page(user_id: int | None, first: int | None, after: str | None) -> Connection[Payment]:
    """A page of payments (of one user, or of everyone), newest first."""
    size, after_id = page_size(first), decode_id_cursor(after)
    query = tables.Payment.all() if user_id is None else tables.Payment.filter(user_id=user_id)
    if after_id is not None:
        query = query.filter(id__lt=after_id)
    rows = await query.order_by("-id").limit(size + 1)
    return connection(rows, size, lambda p: str(p.id), Payment.from_model)


@strawberry.type
class ProSubscription:
    id: strawberry.ID
    status: ProSubscriptionStatus
    stripe_subscription_id: str | None
    stripe_customer_id: str | None
    payment_intent_id: str | None
    current_period_end: datetime | None
    activated_at: datetime | None
    updated_at: datetime
    user_pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: tables.ProSubscription) -> ProSubscription:
        return cls(
            id=strawberry.ID(str(row.id)),
            status=row.status,
            stripe_subscription_id=row.stripe_subscription_id,
            stripe_customer_id=row.stripe_customer_id,
            payment_intent_id=row.payment_intent_id,
            current_period_end=row.current_period_end,
            activated_at=row.activated_at,
            updated_at=row.updated_at,
            user_pk=row.user_id,
        )

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> ProSubscription:
        """The subscription as a status change carries it (models/snapshots.py)."""
        return cls(
            id=strawberry.ID(str(snap["id"])),
            status=ProSubscriptionStatus(snap["status"]),
            stripe_subscription_id=snap.get("stripe_subscription_id"),
            stripe_customer_id=snap.get("stripe_customer_id"),
            payment_intent_id=snap.get("payment_intent_id"),
            current_period_end=parse_at(snap.get("current_period_end")),
            activated_at=parse_at(snap.get("activated_at")),
            updated_at=required_at(snap["updated_at"]),
            user_pk=int(snap["user_id"]),
        )

    @strawberry.field
    async def user(self, info: Info) -> User:
        return await load_user(info, self.user_pk)


@strawberry.type
class Payment:
    id: strawberry.ID
    kind: PaymentKind
    status: PaymentStatus
    amount_cents: int
    currency: str
    stripe_object_id: str
    event_id: str
    occurred_at: datetime
    user_pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: tables.Payment) -> Payment:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=row.kind,
            status=row.status,
            amount_cents=row.amount_cents,
            currency=row.currency,
            stripe_object_id=row.stripe_object_id,
            event_id=row.event_id,
            occurred_at=row.occurred_at,
            user_pk=row.user_id,
        )

    @strawberry.field
    async def user(self, info: Info) -> User:
        return await load_user(info, self.user_pk)
