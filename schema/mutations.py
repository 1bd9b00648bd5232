"""The root `Mutation` of SPEC section 7. Each resolver checks who asks and calls one
domain function (models/registration.py); no status is written here."""

from __future__ import annotations

import strawberry

from models import registration
from schema.context import Info
from schema.errors import Forbidden, NotFound
from schema.ids import record_id
from schema.types.groups import Debt, Group
from schema.types.inbox import WebhookEvent
from schema.types.users import ProSubscription, User


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Admin.")
    async def create_user(self, info: Info, email: str, name: str) -> User:
        info.context.require_admin()
        user = await registration.create_user(email, name, actor=info.context.actor)
        return User.from_model(user)

    @strawberry.mutation(description="Admin.")
    async def create_group(self, info: Info, name: str, member_ids: list[strawberry.ID]) -> Group:
        info.context.require_admin()
        members = [record_id(m, "memberIds") for m in member_ids]
        group = await registration.create_group(name, members, actor=info.context.actor)
        return Group.from_model(group)

    @strawberry.mutation(description="Admin. A new OPEN debt.")
    async def record_debt(
        self, info: Info, group_id: strawberry.ID, debtor_id: strawberry.ID,
        creditor_id: strawberry.ID, amount_cents: int, currency: str = "usd",
    ) -> Debt:
        info.context.require_admin()
        debt = await registration.record_debt(
            record_id(group_id, "groupId"), record_id(debtor_id, "debtorId"),
            record_id(creditor_id, "creditorId"), amount_cents, currency, actor=info.context.actor,
        )
        return Debt.from_model(debt)

    @strawberry.mutation(description="Admin. A PENDING Pro subscription.")
    async def register_pro_subscription(
        self, info: Info, user_id: strawberry.ID, stripe_subscription_id: str,
        stripe_customer_id: str | None = None, payment_intent_id: str | None = None,
    ) -> ProSubscription:
        info.context.require_admin()
        sub = await registration.register_pro_subscription(
            record_id(user_id, "userId"), stripe_subscription_id, stripe_customer_id,
            payment_intent_id, actor=info.context.actor,
        )
        return ProSubscription.from_model(sub)

    @strawberry.mutation(
        description="Admin or the debtor. OPEN|SETTLEMENT_FAILED -> PENDING_SETTLEMENT; one id at least."
    )
    async def register_settlement(
        self, info: Info, debt_id: strawberry.ID, transfer_id: str | None = None,
        payment_intent_id: str | None = None,
    ) -> Debt:
        viewer, pk = info.context.require_viewer(), record_id(debt_id, "debtId")
        if not viewer.is_admin:
            row = await info.context.loaders.debt.load(pk)
            if row is None:
                raise NotFound(f"debt {pk} not found")
            if row.debtor_id != viewer.user_id:
                raise Forbidden(f"only the debtor of debt {pk} (or an admin) may settle it")
        debt = await registration.register_settlement(
            pk, transfer_id, payment_intent_id, actor=info.context.actor
        )
        return Debt.from_model(debt)

    @strawberry.mutation(description="Admin. DEAD|RETRYING -> RECEIVED, enqueued at once.")
    async def retry_webhook_event(self, info: Info, id: strawberry.ID) -> WebhookEvent:
        info.context.require_admin()
        event = await registration.retry_webhook_event(str(id), actor=info.context.actor)
        return WebhookEvent.from_model(event)
