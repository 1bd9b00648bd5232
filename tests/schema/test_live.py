"""Subscriptions in-process: who is pushed what, resuming the feed, slow subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from api.settings import Settings
from models import registration
from models.tables import Debt
from schema.live import head_sequence
from tests.fixtures import records
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import unique_id
from tests.schema.api import Api, start_api

FEED = "subscription($after: Int) { reconciliationFeed(resumeAfter: $after) { sequence entityType entityId toStatus } }"
DEBTS = "subscription { debtStatusChanged { id status } }"
PRO = "subscription { proSubscriptionStatusChanged { id status user { id } } }"


async def settle(debt: Debt) -> Debt:
    return await registration.register_settlement(debt.id, unique_id("tr"), actor="admin:tests")


async def next_data(stream: AsyncGenerator[Any, None], timeout: float = 30) -> dict[str, Any]:
    result = await asyncio.wait_for(stream.__anext__(), timeout)
    assert not result.errors, result.errors
    return dict(result.data)


async def subscribed(api: Api, count: int) -> None:
    await wait_until(lambda: api.broadcast.subscriber_count >= count, message="subscribed")


async def test_a_user_is_never_pushed_another_users_change(api: Api) -> None:
    alice, bob, carol = [await records.create_user() for _ in range(3)]
    bobs_debt = await records.create_debt(debtor=bob, creditor=carol)
    alices_debt = await records.create_debt(debtor=alice, creditor=carol)
    debts = await api.subscribe(DEBTS, api.user_token(alice.id))
    pro = await api.subscribe(PRO, api.user_token(alice.id))
    first_debt, first_pro = asyncio.ensure_future(next_data(debts)), asyncio.ensure_future(next_data(pro))
    await subscribed(api, 2)
    await settle(bobs_debt)
    await records.create_pro_subscription(bob)
    await settle(alices_debt)
    await records.create_pro_subscription(alice)
    assert (await first_debt)["debtStatusChanged"] == {"id": str(alices_debt.id), "status": "PENDING_SETTLEMENT"}
    assert (await first_pro)["proSubscriptionStatusChanged"]["user"] == {"id": str(alice.id)}
    await debts.aclose()
    await pro.aclose()


async def test_a_member_is_pushed_debts_of_a_group_created_after_subscribing(api: Api) -> None:
    alice, bob, carol = [await records.create_user() for _ in range(3)]
    stream = await api.subscribe(DEBTS, api.user_token(alice.id))
    first = asyncio.ensure_future(next_data(stream))
    await subscribed(api, 1)
    group = await records.create_group([alice, bob, carol])
    outsider = await records.create_debt(debtor=bob, creditor=carol)
    await settle(outsider)
    in_group = await records.create_debt(group=group, debtor=bob, creditor=carol)
    assert (await first)["debtStatusChanged"] == {"id": str(in_group.id), "status": "OPEN"}
    await stream.aclose()


async def test_the_feed_resumes_with_exactly_what_was_missed_then_goes_live(api: Api) -> None:
    debts = [await records.create_debt() for _ in range(21)]
    last_seen = await head_sequence()
    missed = [await settle(d) for d in debts[:20]]
    stream = await api.subscribe(FEED, api.admin_token(), after=last_seen)
    replayed = [(await next_data(stream))["reconciliationFeed"] for _ in range(20)]
    assert [r["entityId"] for r in replayed] == [str(d.id) for d in missed]
    sequences = [r["sequence"] for r in replayed]
    assert sequences == sorted(sequences) and sequences[0] > last_seen
    await settle(debts[20])
    live = (await next_data(stream))["reconciliationFeed"]
    assert (live["entityId"], live["toStatus"]) == (str(debts[20].id), "PENDING_SETTLEMENT")
    assert live["sequence"] > sequences[-1]
    await stream.aclose()
    await wait_until(lambda: api.broadcast.subscriber_count == 0)


async def test_a_slow_subscriber_catches_up_without_stalling_a_fast_one(db: Settings) -> None:
    api = await start_api(db.model_copy(update={"subscriber_buffer": 3}))
    try:
        debts = [await records.create_debt() for _ in range(20)]
        slow = await api.subscribe(FEED, api.admin_token())
        fast = await api.subscribe(FEED, api.admin_token())
        slow_first = asyncio.ensure_future(next_data(slow))

        async def read_all() -> list[dict[str, Any]]:
            return [(await next_data(fast))["reconciliationFeed"] for _ in range(20)]

        fast_reading = asyncio.ensure_future(read_all())
        await subscribed(api, 2)
        for debt in debts:
            await settle(debt)
        fast_got = await fast_reading
        # The slow one read nothing meanwhile: its 3-slot buffer overflowed long ago.
        lagged = [s.lagged for s in api.broadcast._subscribers]
        slow_got = [(await slow_first)["reconciliationFeed"]]
        slow_got += [(await next_data(slow))["reconciliationFeed"] for _ in range(19)]
        expected = [str(d.id) for d in debts]
        assert [c["entityId"] for c in fast_got] == expected
        assert slow_got == fast_got
        assert sorted(lagged)[-1] > 0
        await slow.aclose()
        await fast.aclose()
    finally:
        await api.broadcast.close()
