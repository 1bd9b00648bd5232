"""One execution per change for the subscribers allowed to see exactly the same thing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from graphql import ExecutionResult

from models.changes import StatusChange
from schema.live import head_sequence
from schema.shared_results import SharedResults
from tests.fixtures import records
from tests.schema.api import Api
from tests.schema.test_live import next_data, settle, subscribed

FEED = "subscription($after: Int) { reconciliationFeed(resumeAfter: $after) { sequence entityId toStatus } }"
FEED_MAYBE_STATUS = (
    "subscription($after: Int, $status: Boolean!) {"
    " reconciliationFeed(resumeAfter: $after) { sequence entityId toStatus @include(if: $status) } }"
)
DEBTS = "subscription { debtStatusChanged { id status } }"


async def test_admins_with_the_same_selection_get_the_same_result_whatever_they_resume_from(api: Api) -> None:
    start = await head_sequence()
    debt = await records.create_debt()
    # Both resume, so neither can miss the change however late its stream starts.
    one = await api.subscribe(FEED, api.admin_token(), after=start)
    other = await api.subscribe(FEED, api.admin_token(), after=start)
    await settle(debt)

    async def settled(stream: AsyncGenerator[Any, None]) -> dict[str, Any]:
        while (got := (await next_data(stream))["reconciliationFeed"])["toStatus"] != "PENDING_SETTLEMENT":
            pass
        return got

    assert await settled(one) == await settled(other)
    await one.aclose()
    await other.aclose()


async def test_one_execution_serves_every_request_for_the_same_selection_and_change() -> None:
    shared, executions = SharedResults(), []
    change = object()

    def execute() -> ExecutionResult:
        executions.append(1)
        return ExecutionResult(data={"n": len(executions)})

    first = shared.result("admin-feed", change, execute)
    assert shared.result("admin-feed", change, execute) is first
    assert shared.result("other-selection", change, execute) is not first
    assert shared.result("admin-feed", object(), execute) is not first
    assert len(executions) == 3


async def test_a_variable_below_the_root_field_keeps_results_apart(api: Api) -> None:
    start = await head_sequence()
    debt = await records.create_debt()
    with_status = await api.subscribe(FEED_MAYBE_STATUS, api.admin_token(), after=start, status=True)
    without = await api.subscribe(FEED_MAYBE_STATUS, api.admin_token(), after=start, status=False)
    await settle(debt)

    got_with = [(await next_data(with_status))["reconciliationFeed"] for _ in range(2)]
    got_without = [(await next_data(without))["reconciliationFeed"] for _ in range(2)]
    assert [c.get("toStatus") for c in got_with] == ["OPEN", "PENDING_SETTLEMENT"]
    assert all("toStatus" not in c for c in got_without)
    assert [c["sequence"] for c in got_with] == [c["sequence"] for c in got_without]
    await with_status.aclose()
    await without.aclose()


async def test_users_never_share_a_result_with_an_admin_or_each_other(api: Api) -> None:
    alice, bob = await records.create_user(), await records.create_user()
    debt = await records.create_debt(debtor=alice, creditor=bob)
    streams = [
        await api.subscribe(DEBTS, api.admin_token()),
        await api.subscribe(DEBTS, api.user_token(alice.id)),
        await api.subscribe(DEBTS, api.user_token(bob.id)),
    ]
    firsts = asyncio.ensure_future(asyncio.gather(*(s.__anext__() for s in streams)))
    await subscribed(api, 3)
    await settle(debt)
    admins, alices, bobs = await asyncio.wait_for(firsts, 30)
    assert admins.data == alices.data == bobs.data == {
        "debtStatusChanged": {"id": str(debt.id), "status": "PENDING_SETTLEMENT"}
    }
    assert admins.data is not alices.data and alices.data is not bobs.data
    for stream in streams:
        await stream.aclose()


def test_a_node_is_shared_only_for_the_same_change_object() -> None:
    shared = SharedResults(nodes=2)
    change = StatusChange.from_json(
        b'{"sequence": 7, "entity_type": "Debt", "entity_id": "3", "from_status": "OPEN",'
        b' "to_status": "SETTLED", "at": "2026-01-01T00:00:00+00:00", "event_id": null, "snapshot": {}}'
    )
    replayed = StatusChange.from_json(change.to_json())
    node = shared.node(change, lambda c: object())
    assert shared.node(change, lambda c: object()) is not node  # another mapper
    as_sequence = shared.node(change, _ident)
    assert shared.node(change, _ident) is as_sequence
    assert shared.node(replayed, _ident) is not as_sequence


def _ident(change: StatusChange) -> object:
    return object()
