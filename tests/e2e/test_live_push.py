"""Live push end to end: across processes (two API servers, one worker, PostgreSQL and
Redis), and the resumable feed after a disconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from api.tokens import issue_token
from tests.e2e.test_graphql_transports import SETTLE, make_world, record_debt
from tests.fixtures.processes import Proc, Server, start_server, start_worker
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import event, transfer, unique_id
from tests.schema.clients import gql_subscribe, http, transport_ws

FEED = "subscription($after: Int) { reconciliationFeed(resumeAfter: $after) { sequence entityType entityId toStatus } }"
WATCH = "subscription { debtStatusChanged { id status } }"


async def next_item(stream: Any, timeout: float = 15) -> dict[str, Any]:
    return dict(await asyncio.wait_for(stream.__anext__(), timeout))


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
async def test_a_subscriber_on_one_api_gets_the_change_a_webhook_on_another_caused(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    processes.append(start_worker(settings, tmp_path))
    first: Server = start_server(settings, tmp_path, name="serve1")
    processes.append(first)
    second: Server = start_server(settings, tmp_path, name="serve2")
    processes.append(second)
    admin = issue_token(settings, "ops", "admin")
    ids = await make_world(first.base_url, admin)
    mine, theirs = await record_debt(first.base_url, admin, ids), None
    # Another pair's debt: the watching user is in neither its group nor its parties.
    others = await make_world(first.base_url, admin)
    theirs = await record_debt(first.base_url, admin, others)
    transfers = {mine: unique_id("tr"), theirs: unique_id("tr")}
    for debt, who in ((mine, ids), (theirs, others)):
        user = issue_token(settings, who["debtor"], "user")
        assert (await http(first.base_url, SETTLE, user, d=debt, t=transfers[debt]))["data"]
    async with transport_ws(second.base_url, issue_token(settings, ids["creditor"], "user")) as session:
        stream = gql_subscribe(session, WATCH)
        pending = asyncio.ensure_future(next_item(stream))
        await wait_until(lambda: second.metric("trackit_websocket_subscribers") >= 1, timeout=10)
        for debt in (theirs, mine):
            evt = event("transfer.created", transfer(id=transfers[debt], amount=1100))
            assert first.post_event(evt).status_code == 200
        assert (await pending)["debtStatusChanged"] == {"id": mine, "status": "SETTLED"}
        await stream.aclose()


async def test_the_feed_resumes_after_a_disconnect_with_exactly_the_missed_changes(
    service: Server, settings: Settings
) -> None:
    base, admin = service.base_url, issue_token(settings, "ops", "admin")
    ids = await make_world(base, admin)
    debts = [await record_debt(base, admin, ids) for _ in range(21)]
    user = issue_token(settings, ids["debtor"], "user")
    async with transport_ws(base, admin) as session:
        stream = gql_subscribe(session, FEED)
        seen = asyncio.ensure_future(next_item(stream))
        await wait_until(lambda: service.metric("trackit_websocket_subscribers") >= 1, timeout=10)
        await record_debt(base, admin, ids)
        last = (await seen)["reconciliationFeed"]["sequence"]
        await stream.aclose()
    # Offline: 20 changes happen.
    transfers = {}
    for debt in debts[:20]:
        transfers[debt] = unique_id("tr")
        assert (await http(base, SETTLE, user, d=debt, t=transfers[debt]))["data"]
    async with transport_ws(base, admin) as session:
        stream = gql_subscribe(session, FEED, after=last)
        missed = [(await next_item(stream))["reconciliationFeed"] for _ in range(20)]
        assert [(m["entityId"], m["toStatus"]) for m in missed] == [(d, "PENDING_SETTLEMENT") for d in debts[:20]]
        sequences = [m["sequence"] for m in missed]
        assert sequences == sorted(set(sequences)) and sequences[0] > last
        # Then live: Stripe confirms one transfer, the worker settles the debt.
        evt = event("transfer.created", transfer(id=transfers[debts[0]], amount=1100))
        assert service.post_event(evt).status_code == 200
        live: list[dict[str, Any]] = []
        while not any(c["entityId"] == debts[0] and c["toStatus"] == "SETTLED" for c in live):
            live.append((await next_item(stream))["reconciliationFeed"])
        assert [c["sequence"] for c in live] == sorted(set(c["sequence"] for c in live))
        assert live[0]["sequence"] > sequences[-1]
        await stream.aclose()
