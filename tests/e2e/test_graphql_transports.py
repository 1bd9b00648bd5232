"""The GraphQL API on a real `trackit serve` (and worker), through real clients: HTTP,
graphql-transport-ws (gql) and legacy graphql-ws (plain websockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.settings import Settings
from api.tokens import issue_token
from tests.fixtures.processes import Server
from tests.fixtures.stripe_events import event, transfer, unique_id
from tests.schema.clients import (
    LegacyWs,
    Payload,
    codes,
    gql_execute,
    gql_subscribe,
    http,
    init_payload,
    transport_ws,
    ws_url,
)

Run = Callable[..., Awaitable[Payload]]

CREATE_USER = "mutation($e: String!, $n: String!) { createUser(email: $e, name: $n) { id } }"
SETTLE = "mutation($d: ID!, $t: String) { registerSettlement(debtId: $d, transferId: $t) { id status transferId } }"


@asynccontextmanager
async def runner(transport: str, base: str, token: str | None) -> AsyncIterator[Run]:
    """`run(query, **variables)` over one transport, as the holder of `token`."""
    if transport == "http":
        async def run_http(query: str, **variables: Any) -> Payload:
            return await http(base, query, token, **variables)

        yield run_http
    elif transport == "graphql-transport-ws":
        async with transport_ws(base, token) as session:
            async def run_gql(query: str, **variables: Any) -> Payload:
                return await gql_execute(session, query, **variables)

            yield run_gql
    else:
        async with LegacyWs.connect(base, token) as legacy:
            yield legacy.execute


async def make_world(base: str, admin: str) -> dict[str, str]:
    ids = {}
    for who in ("debtor", "creditor"):
        out = await http(base, CREATE_USER, admin, e=f"{unique_id(who)}@example.com", n=who)
        ids[who] = out["data"]["createUser"]["id"]
    group = await http(base, "mutation($m: [ID!]!) { createGroup(name: \"Trip\", memberIds: $m) { id } }",
                       admin, m=[ids["debtor"], ids["creditor"]])
    ids["group"] = group["data"]["createGroup"]["id"]
    return ids


async def record_debt(base: str, admin: str, ids: dict[str, str], amount: int = 1100) -> str:
    out = await http(
        base, "mutation($g: ID!, $d: ID!, $c: ID!, $a: Int!) { recordDebt(groupId: $g, debtorId: $d, "
        "creditorId: $c, amountCents: $a) { id status } }",
        admin, g=ids["group"], d=ids["debtor"], c=ids["creditor"], a=amount,
    )
    assert out["data"]["recordDebt"]["status"] == "OPEN", out
    return str(out["data"]["recordDebt"]["id"])


async def test_queries_and_mutations_as_admin_and_as_user_over_every_transport(
    service: Server, settings: Settings
) -> None:
    for transport in ("http", "graphql-transport-ws", "graphql-ws"):
        await _queries_and_mutations(service, settings, transport)
    await _http_get_runs_queries_but_not_mutations(service, settings)


async def _queries_and_mutations(service: Server, settings: Settings, transport: str) -> None:
    base, admin = service.base_url, issue_token(settings, "ops", "admin")
    ids = await make_world(base, admin)
    debt = await record_debt(base, admin, ids)
    user = issue_token(settings, ids["debtor"], "user")
    async with runner(transport, base, admin) as as_admin, runner(transport, base, user) as as_user:
        made = await as_admin(CREATE_USER, e=f"{unique_id('t')}@example.com", n="Via " + transport)
        assert made["data"]["createUser"]["id"]
        assert codes(await as_user(CREATE_USER, e=f"{unique_id('t')}@example.com", n="x")) == ["FORBIDDEN"]
        me = await as_user("{ me { id debts { id status } } }")
        assert me["data"]["me"] == {"id": ids["debtor"], "debts": [{"id": debt, "status": "OPEN"}]}
        group = await as_user("query($id: ID!) { group(id: $id) { members { id } balances { netCents } } }",
                              id=ids["group"])
        assert {m["id"] for m in group["data"]["group"]["members"]} == {ids["debtor"], ids["creditor"]}
        stats = "{ reconciliationStats { received processed dead } }"
        assert set((await as_admin(stats))["data"]["reconciliationStats"]) == {"received", "processed", "dead"}
        assert codes(await as_user(stats)) == ["FORBIDDEN"]
        transfer_id = unique_id("tr")
        settled = await as_user(SETTLE, d=debt, t=transfer_id)
        assert settled["data"]["registerSettlement"] == {"id": debt, "status": "PENDING_SETTLEMENT",
                                                         "transferId": transfer_id}
        again = await as_admin(SETTLE, d=debt, t=transfer_id)
        assert codes(again) == ["CONFLICT"]
        page = await as_admin("{ debts(first: 1) { edges { node { id } } pageInfo { hasNextPage } } }")
        assert page["data"]["debts"]["edges"] == [{"node": {"id": debt}}]


async def _http_get_runs_queries_but_not_mutations(service: Server, settings: Settings) -> None:
    admin = issue_token(settings, "ops", "admin")
    got = await http(service.base_url, "{ reconciliationStats { dead } }", admin, method="GET")
    assert got["data"] == {"reconciliationStats": {"dead": 0}}

    refused = httpx.get(f"{service.base_url}/graphql", params={"query": "mutation { createUser(email: \"a@b.co\", "
                        "name: \"a\") { id } }"}, headers={"Authorization": f"Bearer {admin}"})
    assert refused.status_code == 400 and "mutations are not allowed" in refused.text


async def _until(stream: AsyncIterator[Payload], want: Callable[[Payload], bool]) -> Payload:
    async for item in stream:
        if want(item):
            return item
    raise AssertionError("stream ended")


async def test_subscriptions_over_both_websocket_protocols(service: Server, settings: Settings) -> None:
    base, admin = service.base_url, issue_token(settings, "ops", "admin")
    ids = await make_world(base, admin)
    debt = await record_debt(base, admin, ids)
    user = issue_token(settings, ids["debtor"], "user")
    watch_debt = "subscription($d: ID) { debtStatusChanged(debtId: $d) { id status debtor { id } } }"
    feed = "subscription { reconciliationFeed { sequence entityType entityId toStatus eventId } }"
    async with transport_ws(base, user) as session, LegacyWs.connect(base, user) as legacy, \
            transport_ws(base, admin) as admin_session, LegacyWs.connect(base, admin) as admin_legacy:
        new_debt = gql_subscribe(session, watch_debt, d=debt)
        new_feed = gql_subscribe(admin_session, feed)
        first_debt = asyncio.ensure_future(new_debt.__anext__())
        first_feed = asyncio.ensure_future(new_feed.__anext__())
        legacy_op = await legacy.start(watch_debt, d=debt)
        legacy_feed = await admin_legacy.start(feed)
        await asyncio.sleep(0)
        await _wait_subscribed(service, 4)
        transfer_id = unique_id("tr")
        assert (await http(base, SETTLE, user, d=debt, t=transfer_id))["data"]
        pending = {"id": debt, "status": "PENDING_SETTLEMENT", "debtor": {"id": ids["debtor"]}}
        assert (await asyncio.wait_for(first_debt, 10))["debtStatusChanged"] == pending
        assert (await legacy.next(legacy_op))["data"]["debtStatusChanged"] == pending
        change = (await asyncio.wait_for(first_feed, 10))["reconciliationFeed"]
        assert (change["entityType"], change["entityId"], change["toStatus"]) == ("Debt", debt, "PENDING_SETTLEMENT")
        assert (await admin_legacy.next(legacy_feed))["data"]["reconciliationFeed"] == change
        # Stripe confirms the transfer: the worker settles the debt and both sockets hear it.
        evt = event("transfer.created", transfer(id=transfer_id, amount=1100))
        assert service.post_event(evt).status_code == 200
        settled = {"id": debt, "status": "SETTLED", "debtor": {"id": ids["debtor"]}}
        assert (await asyncio.wait_for(new_debt.__anext__(), 15))["debtStatusChanged"] == settled
        assert (await legacy.next(legacy_op, 15))["data"]["debtStatusChanged"] == settled
        seen = await asyncio.wait_for(_until(new_feed, lambda p: p["reconciliationFeed"]["toStatus"] == "SETTLED"), 15)
        assert seen["reconciliationFeed"]["eventId"] == evt["id"]
        await legacy.stop(legacy_op)
        await new_debt.aclose()
        await new_feed.aclose()


async def _wait_subscribed(service: Server, count: int) -> None:
    from tests.fixtures.services import wait_until

    await wait_until(lambda: service.metric("trackit_websocket_subscribers") >= count, timeout=10,
                     message=f"{count} subscribers")


def _tokens(settings: Settings) -> dict[str, str | None]:
    forged = settings.model_copy(update={"jwt_secret": "not-the-server-secret-0123456789ab"})
    return {
        "no token": None,
        "expired": issue_token(settings, "ops", "admin", timedelta(seconds=-5)),
        "forged": issue_token(forged, "ops", "admin"),
        "not a jwt": "hello",
    }


# The handshake does not depend on the mode: one server is enough.
@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
async def test_sockets_without_a_valid_token_are_closed_before_anything_runs(
    service: Server, settings: Settings
) -> None:
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": "subscription { reconciliationFeed { sequence } }"}}
    for name, token in _tokens(settings).items():
        async with connect(ws_url(service.base_url), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(_json({"type": "connection_init", "payload": init_payload(token)}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401, name
        async with connect(ws_url(service.base_url), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(_json({"type": "connection_init", "payload": init_payload(token)}))
            message = _loads(await asyncio.wait_for(ws.recv(), 10))
            assert message["type"] == "connection_error", name
            assert message["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
    # Skipping connection_init: the first subscribe closes the socket, unanswered.
    async with connect(ws_url(service.base_url), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(_json(subscribe))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert service.metric("trackit_websocket_subscribers") == 0


def _json(message: dict[str, Any]) -> str:
    import json

    return json.dumps(message)


def _loads(raw: str | bytes) -> dict[str, Any]:
    import json

    return dict(json.loads(raw))
