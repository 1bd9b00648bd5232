"""The root `Query` of SPEC section 7: thin resolvers that check who asks, then read."""

from __future__ import annotations

from datetime import datetime, timezone

import strawberry
from tortoise.expressions import Q
from tortoise.functions import Count

from models import tables
from models.enums import WebhookEventStatus as S
from schema.context import Info
from schema.errors import BadUserInput, Forbidden, NotFound
from schema.ids import optional_record_id, record_id
from schema.pagination import Connection, connection, decode_cursor, decode_id_cursor, page_size
from schema.permissions import is_party, is_self_or_admin, require_group_reader
from schema.types.audit import AuditEntry
from schema.types.enums import DebtStatus, ProSubscriptionStatus, WebhookEventStatus
from schema.types.groups import Debt, Group
from schema.types.inbox import ReconciliationStats, WebhookEvent
from schema.types.users import Payment, ProSubscription, User, payments_page

UNFINISHED = (S.RECEIVED, S.PROCESSING, S.RETRYING)


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user.")
    async def me(self, info: Info) -> User:
        viewer = info.context.require_viewer()
        if viewer.user_id is None:
            raise NotFound("an admin token has no user record: `me` answers user tokens")
        row = await info.context.loaders.user.load(viewer.user_id)
        if row is None:
            raise NotFound(f"user {viewer.user_id} not found")
        return User.from_model(row)

    @strawberry.field(description="Admin, or the user.")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        viewer, user_id = info.context.require_viewer(), record_id(id)
        if not is_self_or_admin(viewer, user_id):
            raise Forbidden(f"user {user_id} is visible to that user and admins only")
        row = await info.context.loaders.user.load(user_id)
        return User.from_model(row) if row is not None else None

    @strawberry.field(description="Admin, or a member.")
    async def group(self, info: Info, id: strawberry.ID) -> Group | None:
        group_id = record_id(id)
        await require_group_reader(info.context, group_id)
        row = await info.context.loaders.group.load(group_id)
        return Group.from_model(row) if row is not None else None

    @strawberry.field(description="Admin, the debtor or the creditor.")
    async def debt(self, info: Info, id: strawberry.ID) -> Debt | None:
        viewer, debt_id = info.context.require_viewer(), record_id(id)
        row = await info.context.loaders.debt.load(debt_id)
        if row is None:
            return None
        if not viewer.is_admin and not is_party(viewer, row.debtor_id, row.creditor_id):
            raise Forbidden(f"debt {debt_id} is visible to its debtor, its creditor and admins only")
        return Debt.from_model(row)

    @strawberry.field(description="Admin. Newest first.")
    async def pro_subscriptions(
        self, info: Info, status: ProSubscriptionStatus | None = None,
        first: int | None = None, after: str | None = None,
    ) -> Connection[ProSubscription]:
        info.context.require_admin()
        size, after_id = page_size(first), decode_id_cursor(after)
        query = tables.ProSubscription.all()
        if status is not None:
            query = query.filter(status=status)
        if after_id is not None:
            query = query.filter(id__lt=after_id)
        rows = await query.order_by("-id").limit(size + 1)
        return connection(rows, size, lambda r: str(r.id), ProSubscription.from_model)

    @strawberry.field(description="Admin. Newest first.")
    async def debts(
        self, info: Info, status: DebtStatus | None = None, group_id: strawberry.ID | None = None,
        first: int | None = None, after: str | None = None,
    ) -> Connection[Debt]:
        info.context.require_admin()
        size, after_id = page_size(first), decode_id_cursor(after)
        query = tables.Debt.all()
        if status is not None:
            query = query.filter(status=status)
        if (group := optional_record_id(group_id, "groupId")) is not None:
            query = query.filter(group_id=group)
        if after_id is not None:
            query = query.filter(id__lt=after_id)
        rows = await query.order_by("-id").limit(size + 1)
        return connection(rows, size, lambda r: str(r.id), Debt.from_model)

    @strawberry.field(description="Admin: anyone's (all without userId); a user: their own only.")
    async def payments(
        self, info: Info, user_id: strawberry.ID | None = None,
        first: int | None = None, after: str | None = None,
    ) -> Connection[Payment]:
        viewer = info.context.require_viewer()
        target = optional_record_id(user_id, "userId")
        if not viewer.is_admin:
            if target is not None and target != viewer.user_id:
                raise Forbidden("a user may list their own payments only")
            target = viewer.user_id
        return await payments_page(target, first, after)

    @strawberry.field(description="Admin. Newest first (by time received).")
    async def webhook_events(
        self, info: Info, status: WebhookEventStatus | None = None, type: str | None = None,
        first: int | None = None, after: str | None = None,
    ) -> Connection[WebhookEvent]:
        info.context.require_admin()
        size = page_size(first)
        query = tables.WebhookEvent.all()
        if status is not None:
            query = query.filter(status=status)
        if type is not None:
            query = query.filter(type=type)
        if after is not None:
            at, event_id = _event_key(decode_cursor(after))
            query = query.filter(Q(received_at__lt=at) | Q(received_at=at, id__lt=event_id))
        rows = await query.order_by("-received_at", "-id").limit(size + 1)
        return connection(
            rows, size, lambda r: f"{r.received_at.isoformat()}|{r.id}", WebhookEvent.from_model
        )

    @strawberry.field(description="Admin.")
    async def webhook_event(self, info: Info, id: strawberry.ID) -> WebhookEvent | None:
        info.context.require_admin()
        row = await tables.WebhookEvent.get_or_none(id=str(id))
        return WebhookEvent.from_model(row) if row is not None else None

    @strawberry.field(description="Admin. Newest first.")
    async def audit_log(
        self, info: Info, entity_type: str | None = None, entity_id: strawberry.ID | None = None,
        first: int | None = None, after: str | None = None,
    ) -> Connection[AuditEntry]:
        info.context.require_admin()
        size, after_id = page_size(first), decode_id_cursor(after)
        query = tables.AuditEntry.all()
        if entity_type is not None:
            query = query.filter(entity_type=entity_type)
        if entity_id is not None:
            query = query.filter(entity_id=str(entity_id))
        if after_id is not None:
            query = query.filter(id__lt=after_id)
        rows = await query.order_by("-id").limit(size + 1)
        return connection(rows, size, lambda r: str(r.id), AuditEntry.from_model)

    @strawberry.field(description="Admin.")
    async def reconciliation_stats(self, info: Info) -> ReconciliationStats:
        info.context.require_admin()
        rows = await (
            tables.WebhookEvent.annotate(n=Count("id")).group_by("status").values_list("status", "n")
        )
        counts = {S(status): int(n) for status, n in rows}
        oldest = await (
            tables.WebhookEvent.filter(status__in=UNFINISHED)
            .order_by("received_at")
            .first()
            .values_list("received_at", flat=True)
        )
        age = None
        if isinstance(oldest, datetime):
            age = max(0.0, (datetime.now(timezone.utc) - oldest).total_seconds())
        return ReconciliationStats(
            received=counts.get(S.RECEIVED, 0),
            processing=counts.get(S.PROCESSING, 0),
            processed=counts.get(S.PROCESSED, 0),
            ignored=counts.get(S.IGNORED, 0),
            retrying=counts.get(S.RETRYING, 0),
            dead=counts.get(S.DEAD, 0),
            oldest_unprocessed_age_seconds=age,
        )


def _event_key(key: str) -> tuple[datetime, str]:
    at, sep, event_id = key.partition("|")
    try:
        return datetime.fromisoformat(at), event_id
    except ValueError:
        raise BadUserInput("cursor is not a cursor this API returned") from None
