"""SPEC section 8 as a table: {admin, the user, another user, no token, expired token,
token signed with another secret} x every operation -> only what SPEC allows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from models import registration
from models.tables import Debt, Group, User
from tests.fixtures import records
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import event, transfer, unique_id
from tests.schema.api import Api, error_codes
from tests.tasks.inbox import deliver

OK = "ok"
PERSONAS = ["admin", "user", "other", "none", "expired", "forged"]


@dataclass
class World:
    owner: User
    mate: User
    other: User
    group: Group
    debt: Debt
    event_id: str


@dataclass
class Case:
    query: str
    variables: dict[str, Any]
    # "The user" of the row: the one the record belongs to.
    owner_id: int
    # For subscriptions: makes a change the subscriber should be pushed.
    cause: Callable[[], Awaitable[object]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Build = Callable[[World], Awaitable[Case]]


async def _fresh_debt(w: World) -> Debt:
    return await records.create_debt(group=w.group, debtor=w.owner, creditor=w.mate)


def q(query: str, **variables: Any) -> Build:
    async def build(w: World) -> Case:
        values = {k: (v(w) if callable(v) else v) for k, v in variables.items()}
        return Case(query, values, w.owner.id)

    return build


async def _register_settlement(w: World) -> Case:
    debt = await _fresh_debt(w)
    return Case(
        "mutation($d: ID!) { registerSettlement(debtId: $d, transferId: \"%s\") { status } }" % unique_id("tr"),
        {"d": debt.id}, w.owner.id,
    )


async def _register_pro(w: World) -> Case:
    user = await records.create_user()
    return Case(
        "mutation($u: ID!) { registerProSubscription(userId: $u, stripeSubscriptionId: \"%s\") { status } }"
        % unique_id("sub"),
        {"u": user.id}, user.id,
    )


async def _create_user(w: World) -> Case:
    return Case(
        "mutation($e: String!) { createUser(email: $e, name: \"New\") { id } }",
        {"e": f"{unique_id('new')}@example.com"}, w.owner.id,
    )


async def _pro_changes(w: World) -> Case:
    user = await records.create_user()
    return Case(
        "subscription($u: ID) { proSubscriptionStatusChanged(userId: $u) { id status user { id } } }",
        {"u": user.id}, user.id, cause=lambda: records.create_pro_subscription(user),
    )


async def _debt_changes(w: World) -> Case:
    debt = await _fresh_debt(w)
    return Case(
        "subscription($d: ID) { debtStatusChanged(debtId: $d) { id status debtor { id } } }",
        {"d": debt.id}, w.owner.id,
        cause=lambda: registration.register_settlement(debt.id, unique_id("tr"), actor="admin:tests"),
    )


async def _feed(w: World) -> Case:
    debt = await _fresh_debt(w)
    return Case(
        "subscription { reconciliationFeed { sequence entityType toStatus } }", {}, w.owner.id,
        cause=lambda: registration.register_settlement(debt.id, unique_id("tr"), actor="admin:tests"),
    )


ADMIN_ONLY = {"admin": OK, "user": "FORBIDDEN", "other": "FORBIDDEN"}
OWNER = {"admin": OK, "user": OK, "other": "FORBIDDEN"}
ANYONE = {"admin": OK, "user": OK, "other": OK}

OPERATIONS: list[tuple[str, Build, dict[str, str]]] = [
    ("me", q("{ me { id } }"), {"admin": "NOT_FOUND", "user": OK, "other": OK}),
    ("user", q("query($id: ID!) { user(id: $id) { id email plan } }", id=lambda w: w.owner.id), OWNER),
    ("user's private fields", q(
        "query($id: ID!) { user(id: $id) { proSubscription { id } debts { id } payments { edges { cursor } } } }",
        id=lambda w: w.owner.id), OWNER),
    ("group", q("query($id: ID!) { group(id: $id) { name members { id } debts { id } balances { netCents } } }",
                id=lambda w: w.group.id), OWNER),
    ("a group mate's private fields", q(
        "query($id: ID!) { group(id: $id) { members { payments { edges { cursor } } } } }",
        id=lambda w: w.group.id), {"admin": OK, "user": "FORBIDDEN", "other": "FORBIDDEN"}),
    ("debt", q("query($id: ID!) { debt(id: $id) { id group { id } creditor { id } } }", id=lambda w: w.debt.id), OWNER),
    ("proSubscriptions", q("{ proSubscriptions { edges { node { id } } } }"), ADMIN_ONLY),
    ("debts", q("{ debts(status: OPEN) { edges { node { id } } } }"), ADMIN_ONLY),
    ("payments (own)", q("{ payments { edges { node { id } } } }"), ANYONE),
    ("payments of a user", q("query($id: ID) { payments(userId: $id) { edges { node { id } } } }",
                             id=lambda w: w.owner.id), OWNER),
    ("webhookEvents", q("{ webhookEvents(status: RETRYING) { edges { node { id payload } } } }"), ADMIN_ONLY),
    ("webhookEvent", q("query($id: ID!) { webhookEvent(id: $id) { id status } }", id=lambda w: w.event_id),
     ADMIN_ONLY),
    ("auditLog", q("{ auditLog(entityType: \"Debt\") { edges { node { id hash } } } }"), ADMIN_ONLY),
    ("reconciliationStats", q("{ reconciliationStats { retrying dead } }"), ADMIN_ONLY),
    ("createUser", _create_user, ADMIN_ONLY),
    ("createGroup", q("mutation($m: [ID!]!) { createGroup(name: \"G\", memberIds: $m) { id } }",
                      m=lambda w: [w.owner.id, w.mate.id]), ADMIN_ONLY),
    ("recordDebt", q("mutation($g: ID!, $d: ID!, $c: ID!) { recordDebt(groupId: $g, debtorId: $d, creditorId: $c, "
                     "amountCents: 500) { status } }",
                     g=lambda w: w.group.id, d=lambda w: w.owner.id, c=lambda w: w.mate.id), ADMIN_ONLY),
    ("registerProSubscription", _register_pro, ADMIN_ONLY),
    ("registerSettlement", _register_settlement, OWNER),
    ("retryWebhookEvent", q("mutation($id: ID!) { retryWebhookEvent(id: $id) { status } }",
                            id=lambda w: w.event_id), ADMIN_ONLY),
    ("proSubscriptionStatusChanged", _pro_changes, OWNER),
    ("debtStatusChanged", _debt_changes, OWNER),
    ("reconciliationFeed", _feed, ADMIN_ONLY),
]


def token_of(api: Api, persona: str, case: Case, world: World) -> str | None:
    return {
        "admin": api.admin_token(),
        "user": api.user_token(case.owner_id),
        "other": api.user_token(world.other.id),
        "none": None,
        "expired": api.expired_token(case.owner_id),
        "forged": api.forged_token(),
    }[persona]


async def outcome(api: Api, case: Case, token: str | None) -> str:
    if case.cause is None:
        result = await api.execute(case.query, token, **case.variables)
        if result.errors:
            return error_codes(result)[0]
        assert result.data is not None
        return OK
    stream = await api.subscribe(case.query, token, **case.variables)
    before = api.broadcast.subscriber_count
    first = asyncio.ensure_future(stream.__anext__())
    try:
        # Either refused at once, or subscribed: then a change must reach it.
        await wait_until(lambda: first.done() or api.broadcast.subscriber_count > before, timeout=10)
        if not first.done():
            await case.cause()
        result = await asyncio.wait_for(first, timeout=10)
        if result.errors:
            return error_codes(result)[0]
        return OK
    finally:
        first.cancel()
        await stream.aclose()


async def build_world(api: Api) -> World:
    owner, mate, other = [await records.create_user() for _ in range(3)]
    group = await records.create_group([owner, mate])
    debt = await records.create_debt(group=group, debtor=owner, creditor=mate)
    await records.create_pro_subscription(owner)
    # A transfer nobody registered: the event waits, RETRYING.
    waiting = await deliver(event("transfer.created", transfer()), api.settings)
    return World(owner, mate, other, group, debt, waiting.id)


async def test_every_operation_answers_only_whom_spec_allows(api: Api) -> None:
    world = await build_world(api)
    mismatches = []
    for name, build, expected in OPERATIONS:
        for persona in PERSONAS:
            want = expected.get(persona, "UNAUTHENTICATED")
            case = await build(world)
            got = await outcome(api, case, token_of(api, persona, case, world))
            if got != want:
                mismatches.append(f"{name} as {persona}: {got}, SPEC says {want}")
    assert mismatches == []
    assert api.broadcast.subscriber_count == 0


@pytest.mark.parametrize("persona", ["none", "expired", "forged"])
async def test_a_bad_token_says_why(api: Api, persona: str) -> None:
    token = {"none": None, "expired": api.expired_token(1), "forged": api.forged_token()}[persona]
    result = await api.execute("{ me { id } }", token)
    assert error_codes(result) == ["UNAUTHENTICATED"]
    message = result.errors[0].message if result.errors else ""
    assert {"none": "sign in", "expired": "expired", "forged": "invalid token"}[persona] in message
