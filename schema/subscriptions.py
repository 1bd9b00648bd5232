"""The root `Subscription` of SPEC section 7.

Each resolver checks who asks before the stream starts (a refusal is the operation's
`error` message), then streams committed changes (schema/live.py), each pushed only to
those allowed to see it.

Slow subscribers: each subscription has a bounded buffer (`TRACKIT_SUBSCRIBER_BUFFER`).
A subscriber that lets it fill up is not closed and never slows anyone else: its buffer
is dropped and it catches up from the durable audit log, at its own pace, before going
on live. `reconciliationFeed` is in strict `sequence` order with no gap; a client that
lost its connection resumes with `resumeAfter: <last sequence it saw>`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TypeVar

import strawberry

from models.changes import StatusChange as Change
from schema.audience import DebtAudience
from schema.context import Info
from schema.errors import BadUserInput, Forbidden, NotFound
from schema.ids import optional_record_id
from schema.live import ChangeFilter, status_changes
from schema.permissions import is_member, is_party
from schema.types.audit import StatusChange
from schema.types.groups import Debt
from schema.types.users import ProSubscription

T = TypeVar("T")


@strawberry.type(
    description="Live status changes, each pushed only to those allowed to see it. A slow "
    "subscriber is never closed and never slows others: when its buffer "
    "(TRACKIT_SUBSCRIBER_BUFFER) fills, it catches up from the durable audit log before "
    "going on live. After a disconnect, resume reconciliationFeed with resumeAfter."
)
class Subscription:
    @strawberry.subscription(description="Admin: all, or one user's; a user: their own only.")
    async def pro_subscription_status_changed(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[ProSubscription, None]:
        viewer = info.context.require_viewer()
        target = optional_record_id(user_id, "userId")
        if not viewer.is_admin:
            if target is not None and target != viewer.user_id:
                raise Forbidden("a user is pushed their own Pro subscription only")
            target = viewer.user_id

        def accepts(change: Change) -> bool:
            return change.entity_type == "ProSubscription" and (
                target is None or change.snapshot.get("user_id") == target
            )

        which = ChangeFilter(accepts, entity_type="ProSubscription")
        changes = status_changes(info.context.broadcast, which)
        return _mapped(info, changes, _pro_subscription)

    @strawberry.subscription(
        description="Admin: all; a user: debts they are party to or in their groups."
    )
    async def debt_status_changed(
        self, info: Info, debt_id: strawberry.ID | None = None, group_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Debt, None]:
        viewer = info.context.require_viewer()
        debt_pk = optional_record_id(debt_id, "debtId")
        group_pk = optional_record_id(group_id, "groupId")
        if debt_pk is not None:
            row = await info.context.loaders.debt.load(debt_pk)
            if row is None:
                raise NotFound(f"debt {debt_pk} not found")
            if not viewer.is_admin and not is_party(viewer, row.debtor_id, row.creditor_id) \
                    and not await is_member(info.context, row.group_id):
                raise Forbidden(f"debt {debt_pk} is not yours or in one of your groups")
        if group_pk is not None and not viewer.is_admin and not await is_member(info.context, group_pk):
            raise Forbidden(f"group {group_pk} is visible to its members and admins only")
        audience = None if viewer.is_admin or viewer.user_id is None else await DebtAudience.of_user(viewer.user_id)

        def accepts(change: Change) -> bool:
            snap = change.snapshot
            return (
                change.entity_type == "Debt"
                and (debt_pk is None or snap.get("id") == debt_pk)
                and (group_pk is None or snap.get("group_id") == group_pk)
                and (audience is None or audience.may_see(snap))
            )

        async def admits(change: Change) -> bool:
            return audience is None or await audience.admits(change.snapshot)

        which = ChangeFilter(accepts, admits, entity_type="Debt")
        changes = status_changes(info.context.broadcast, which)
        return _mapped(info, changes, _debt)

    @strawberry.subscription(
        description="Admin: every status change, webhook events included, in sequence order. "
        "resumeAfter: the last sequence seen; the changes after it come first, then live ones."
    )
    async def reconciliation_feed(
        self, info: Info, resume_after: int | None = None
    ) -> AsyncGenerator[StatusChange, None]:
        info.context.require_admin()
        if resume_after is not None and resume_after < 0:
            raise BadUserInput("resumeAfter is a sequence number: 0 or more")
        broadcast, which = info.context.broadcast, ChangeFilter(lambda change: True)

        def feed(after: int) -> AsyncGenerator[Change, None]:
            # The stream a FeedGroup writes to its members' sockets: not a client's own.
            return status_changes(broadcast, which, resume_after=after, ordered=True, counted=False)

        # Live and in order, a socket's feed is written by one task for all admins
        # with the same selection (schema/shared_results.py, FeedGroup).
        shared = info.context.shared_results
        handoff = shared.feeds.member("reconciliationFeed", feed, StatusChange.from_change) if shared else None
        changes = status_changes(broadcast, which, resume_after=resume_after, ordered=True, handoff=handoff)
        return _mapped(info, changes, StatusChange.from_change)


def _pro_subscription(change: Change) -> ProSubscription:
    return ProSubscription.from_snapshot(change.snapshot)


def _debt(change: Change) -> Debt:
    return Debt.from_snapshot(change.snapshot)


async def _mapped(
    info: Info, changes: AsyncGenerator[Change, None], to_node: Callable[[Change], T]
) -> AsyncGenerator[T, None]:
    # The same node for every subscriber of this change, so that those who may see the
    # same thing share one execution of it (schema/shared_results.py).
    shared = info.context.shared_results
    # Closing the stream leaves the broadcast at once, not when garbage collected.
    async with aclosing(changes):
        async for change in changes:
            yield to_node(change) if shared is None else shared.node(change, to_node)
