"""Groups, their members' debts and balances."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from models import tables
from models.balances import group_balances
from schema.context import Info
from schema.errors import NotFound
from schema.types.enums import DebtStatus
from schema.types.snapshots import parse_at, required_at
from schema.types.users import User, load_user


async def load_group(info: Info, group_id: int) -> Group:
    """The group `group_id`, through the request's loader (it must exist)."""
    row = await info.context.loaders.group.load(group_id)
    if row is None:
        raise NotFound(f"group {group_id} not found")
    return Group.from_model(row)


@strawberry.type
class Group:
    id: strawberry.ID
    name: str
    pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: tables.Group) -> Group:
        return cls(id=strawberry.ID(str(row.id)), name=row.name, pk=row.id)

    @strawberry.field
    async def members(self, info: Info) -> list[User]:
        ids = await info.context.loaders.member_ids.load(self.pk)
        rows = await info.context.loaders.user.load_many(ids)
        return [User.from_model(row) for row in rows if row is not None]

    @strawberry.field(description="The group's debts, newest first.")
    async def debts(self, info: Info, status: DebtStatus | None = None) -> list[Debt]:
        rows = await info.context.loaders.debts_of_group.load(self.pk)
        return [Debt.from_model(d) for d in rows if status is None or d.status == status]

    @strawberry.field(description="Per member and currency, over the debts not SETTLED.")
    async def balances(self) -> list[Balance]:
        return [
            Balance(currency=b.currency, net_cents=b.net_cents, user_pk=b.user_id)
            for b in await group_balances(self.pk)
        ]


@strawberry.type
class Balance:
    currency: str
    net_cents: int
    user_pk: strawberry.Private[int]

    @strawberry.field
    async def user(self, info: Info) -> User:
        return await load_user(info, self.user_pk)


@strawberry.type
class Debt:
    id: strawberry.ID
    amount_cents: int
    currency: str
    status: DebtStatus
    transfer_id: str | None
    payment_intent_id: str | None
    settled_at: datetime | None
    updated_at: datetime
    group_pk: strawberry.Private[int]
    debtor_pk: strawberry.Private[int]
    creditor_pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: tables.Debt) -> Debt:
        return cls(
            id=strawberry.ID(str(row.id)),
            amount_cents=row.amount_cents,
            currency=row.currency,
            status=row.status,
            transfer_id=row.transfer_id,
            payment_intent_id=row.payment_intent_id,
            settled_at=row.settled_at,
            updated_at=row.updated_at,
            group_pk=row.group_id,
            debtor_pk=row.debtor_id,
            creditor_pk=row.creditor_id,
        )

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Debt:
        """The debt as a status change carries it (models/snapshots.py)."""
        return cls(
            id=strawberry.ID(str(snap["id"])),
            amount_cents=int(snap["amount_cents"]),
            currency=str(snap["currency"]),
            status=DebtStatus(snap["status"]),
            transfer_id=snap.get("transfer_id"),
            payment_intent_id=snap.get("payment_intent_id"),
            settled_at=parse_at(snap.get("settled_at")),
            updated_at=required_at(snap["updated_at"]),
            group_pk=int(snap["group_id"]),
            debtor_pk=int(snap["debtor_id"]),
            creditor_pk=int(snap["creditor_id"]),
        )

    @strawberry.field
    async def group(self, info: Info) -> Group:
        return await load_group(info, self.group_pk)

    @strawberry.field
    async def debtor(self, info: Info) -> User:
        return await load_user(info, self.debtor_pk)

    @strawberry.field
    async def creditor(self, info: Info) -> User:
        return await load_user(info, self.creditor_pk)
