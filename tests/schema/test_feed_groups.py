"""The feed written by one task for all admins (schema/shared_results.py, FeedGroup):
over real graphql-transport-ws sockets each subscriber gets its own operation id, every
change once and in order; a user never rides on it; a socket that is not writable at
once is handed back to its own stream and misses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from api.settings import Settings
from api.tokens import issue_token
from models.tables import Debt
from schema.app import graphql_routes
from schema.live import head_sequence
from schema.shared_results import CURRENT_OPERATION, SharedResults, SocketOperation
from tests.fixtures import records
from tests.fixtures.services import free_port, wait_until
from tests.schema.api import Api, start_api
from tests.schema.test_live import settle

FEED = "subscription { reconciliationFeed { sequence entityType entityId toStatus } }"
DEBTS = "subscription { debtStatusChanged { id status } }"


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[str, SharedResults]]:
    """The GraphQL routes on a real uvicorn in this loop: its websocket URL and the
    view's shared results."""
    api = await start_api(settings)
    routes = graphql_routes(settings, api.broadcast)
    shared: SharedResults = routes[1].endpoint.shared_results  # type: ignore[attr-defined]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        ws_per_message_deflate=False,
    ))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, message="uvicorn started")
        yield f"ws://127.0.0.1:{port}/graphql", shared
    finally:
        server.should_exit = True
        await serving
        await api.broadcast.close()


@contextlib.asynccontextmanager
async def subscriber(url: str, token: str, op_id: str, query: str) -> AsyncIterator[ClientConnection]:
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}}))
        yield ws


async def received(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(count)]


async def test_admins_share_one_writer_each_with_its_own_id_and_a_user_sees_only_theirs(db: Settings) -> None:
    alice, bob, carol = [await records.create_user() for _ in range(3)]
    async with served(db) as (url, shared), contextlib.AsyncExitStack() as stack:
        admin = issue_token(db, "ops-alice", "admin")
        admins = [await stack.enter_async_context(subscriber(url, admin, op, FEED)) for op in ("a-1", "b 2")]
        user = await stack.enter_async_context(subscriber(url, issue_token(db, str(alice.id), "user"), 'u"3', DEBTS))
        await asyncio.sleep(0.2)  # the subscriptions start
        start = await head_sequence()
        # The first change each admin delivers itself, then joins the group.
        first = await records.create_debt(debtor=bob, creditor=carol)
        for ws in admins:
            await received(ws, 1)
        await wait_until(lambda: sum(len(g.members) for g in shared.feeds.groups.values()) == 2,
                         message="both admins in the feed group")

        others = await records.create_debt(debtor=bob, creditor=carol)
        alices = await records.create_debt(debtor=alice, creditor=carol)
        await settle(alices)
        await settle(first)
        got = [await received(ws, 4) for ws in admins]
        for ws_messages, op in zip(got, ("a-1", "b 2")):
            assert [m["id"] for m in ws_messages] == [op] * 4
            assert all(m["type"] == "next" and set(m) == {"id", "type", "payload"} for m in ws_messages)
        feeds = [[m["payload"]["data"]["reconciliationFeed"] for m in ws_messages] for ws_messages in got]
        assert feeds[0] == feeds[1]
        assert [c["sequence"] for c in feeds[0]] == sorted(c["sequence"] for c in feeds[0])
        assert all(c["sequence"] > start for c in feeds[0])
        assert [(c["entityId"], c["toStatus"]) for c in feeds[0]] == [
            (str(others.id), "OPEN"), (str(alices.id), "OPEN"), (str(alices.id), "PENDING_SETTLEMENT"),
            (str(first.id), "PENDING_SETTLEMENT"),
        ]
        # Alice is party to her debt only: never the others', through the group or not.
        mine = await received(user, 2)
        assert [m["id"] for m in mine] == ['u"3'] * 2
        assert [m["payload"]["data"]["debtStatusChanged"] for m in mine] == [
            {"id": str(alices.id), "status": "OPEN"}, {"id": str(alices.id), "status": "PENDING_SETTLEMENT"},
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            extra = await asyncio.wait_for(user.recv(), 0.5)
            raise AssertionError(f"the user was pushed more: {extra!r}")

        # An operation the client completed is written no more; the other goes on.
        await admins[0].send(json.dumps({"id": "a-1", "type": "complete"}))
        await asyncio.sleep(0.2)
        last = await records.create_debt(debtor=bob, creditor=carol)
        assert (await received(admins[1], 1))[0]["payload"]["data"]["reconciliationFeed"]["entityId"] == str(last.id)
        with contextlib.suppress(asyncio.TimeoutError):
            extra = await asyncio.wait_for(admins[0].recv(), 0.5)
            raise AssertionError(f"a completed operation was written: {extra!r}")


class Socket:
    """A fake socket: what the group writes, and a switch that makes it not writable."""

    def __init__(self, op_id: str) -> None:
        self.sent: list[dict[str, Any]] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.operation = SocketOperation(op_id, self.send_text, lambda: True)

    def send_text(self, text: str) -> Coroutine[Any, Any, None]:
        async def send() -> None:
            await self.writable.wait()
            self.sent.append(json.loads(text))
        return send()


async def test_a_socket_not_writable_is_handed_back_and_misses_nothing(api: Api) -> None:
    await records.create_debt()
    fast, slow = Socket("fast"), Socket("slow")
    shared = api.shared_results
    own: dict[str, list[dict[str, Any]]] = {"fast": [], "slow": []}
    streams, readers = [], []

    async def read(name: str, stream: Any) -> None:
        async for result in stream:
            assert not result.errors
            own[name].append(result.data["reconciliationFeed"])

    for name, socket in (("fast", fast), ("slow", slow)):
        # As the transport handler does, in the task that runs the operation.
        CURRENT_OPERATION.set(socket.operation)
        streams.append(await api.subscribe(FEED, api.admin_token()))
        readers.append(asyncio.create_task(read(name, streams[-1])))
    CURRENT_OPERATION.set(None)
    try:
        # A stream joins its group at the first change after the group is ready.
        debts: list[Debt] = []
        while sum(len(g.members) for g in shared.feeds.groups.values()) < 2:
            assert len(debts) < 5, "never joined the feed group"
            debts.append(await records.create_debt())
            await asyncio.sleep(0.2)
        written, alone = len(fast.sent), len(own["slow"])
        slow.writable.clear()
        await settle(debts[0])
        more = [await records.create_debt() for _ in range(3)]
        await wait_until(lambda: len(fast.sent) >= written + 4, message="the fast socket written by the group")
        slow.writable.set()
        expected = len(debts) + 1 + 3

        def sequences(name: str, socket: Socket) -> list[int]:
            return [c["sequence"] for c in own[name]] + [m["payload"]["data"]["reconciliationFeed"]["sequence"]
                                                         for m in socket.sent]

        await wait_until(lambda: len(sequences("slow", slow)) >= expected, message="the slow one caught up")
        await asyncio.sleep(0.2)
        for name, socket in (("fast", fast), ("slow", slow)):
            got = sequences(name, socket)
            assert len(got) == expected and len(set(got)) == expected, (name, got)
            assert all(m["id"] == name for m in socket.sent)
        assert sorted(sequences("slow", slow)) == sorted(sequences("fast", fast))
        # Handed back: the changes after the one stuck in its socket came by its own stream.
        assert len(own["slow"]) > alone and more
        stuck = max(m["payload"]["data"]["reconciliationFeed"]["sequence"] for m in slow.sent)
        assert min(c["sequence"] for c in own["slow"][alone:]) > stuck
    finally:
        for task in readers:
            task.cancel()
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()
