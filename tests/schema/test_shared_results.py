"""One execution per change for the subscribers allowed to see exactly the same thing."""

from __future__ import annotations

import asyncio

from models.changes import StatusChange
from schema.live import head_sequence
from schema.shared_results import SharedResults
from tests.fixtures import records
from tests.schema.api import Api
from tests.schema.test_live import next_data, settle, subscribed

FEED = "subscription($after: Int) { reconciliationFeed(resumeAfter: $after) { sequence entityId toStatus } }"
FEED_MAYBE_STATUS = (
    "subscription($status: Boolean!) { reconciliationFeed { sequence entityId toStatus @include(if: $status) } }"
)
DEBTS = "subscription { debtStatusChanged { id status } }"


async def test_admins_with_the_same_selection_share_one_execution_whatever_they_resume_from(api: Api) -> None:
    debt = await records.create_debt()
    live = await api.subscribe(FEED, api.admin_token())
    resumed = await api.subscribe(FEED, api.admin_token(), after=await head_sequence())
    firsts = asyncio.ensure_future(asyncio.gather(live.__anext__(), resumed.__anext__()))
    await subscribed(api, 2)
    await settle(debt)
    live_result, resumed_result = await asyncio.wait_for(firsts, 30)
    assert live_result.data == resumed_result.data
    assert live_result.data["reconciliationFeed"]["entityId"] == str(debt.id)
    # The very same result: executed once, not once per subscriber.
    assert live_result.data is resumed_result.data
    await live.aclose()
    await resumed.aclose()


async def test_a_variable_below_the_root_field_keeps_results_apart(api: Api) -> None:
    debt = await records.create_debt()
    with_status = await api.subscribe(FEED_MAYBE_STATUS, api.admin_token(), status=True)
    without = await api.subscribe(FEED_MAYBE_STATUS, api.admin_token(), status=False)
    firsts = asyncio.ensure_future(asyncio.gather(next_data(with_status), next_data(without)))
    await subscribed(api, 2)
    await settle(debt)
    got_with, got_without = await asyncio.wait_for(firsts, 30)
    assert got_with["reconciliationFeed"]["toStatus"] == "PENDING_SETTLEMENT"
    assert "toStatus" not in got_without["reconciliationFeed"]
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
