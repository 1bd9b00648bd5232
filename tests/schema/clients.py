"""Real GraphQL clients for tests against a running server: HTTP (httpx),
graphql-transport-ws (gql, as the mobile client) and legacy graphql-ws (a plain
`websockets` client speaking the subscriptions-transport-ws messages)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import ClientConnection, connect

Payload = dict[str, Any]


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/graphql"


def init_payload(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def http(base_url: str, query: str, token: str | None = None, method: str = "POST", **variables: Any) -> Payload:
    """`{"data": ..., "errors": [...]}` of one operation over HTTP."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as client:
        if method == "GET":
            params = {"query": query, "variables": json.dumps(variables)}
            response = await client.get(f"{base_url}/graphql", params=params, headers=headers)
        else:
            response = await client.post(
                f"{base_url}/graphql", json={"query": query, "variables": variables}, headers=headers
            )
    assert response.status_code in (200, 400), response.text
    return dict(response.json())


@asynccontextmanager
async def transport_ws(base_url: str, token: str | None) -> AsyncIterator[AsyncClientSession]:
    """A gql session on graphql-transport-ws."""
    transport = WebsocketsTransport(
        url=ws_url(base_url), init_payload=init_payload(token),
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        yield session


async def gql_execute(session: AsyncClientSession, query: str, **variables: Any) -> Payload:
    """The same shape as `http`: errors are returned, not raised."""
    try:
        return {"data": await session.execute(GraphQLRequest(query, variable_values=variables))}
    except TransportQueryError as exc:
        return {"data": exc.data, "errors": exc.errors}


def gql_subscribe(session: AsyncClientSession, query: str, **variables: Any) -> AsyncGenerator[Payload, None]:
    return session.subscribe(GraphQLRequest(query, variable_values=variables))  # type: ignore[return-value]


class LegacyWs:
    """The legacy `graphql-ws` protocol (subscriptions-transport-ws) over one socket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.inbox: dict[str, asyncio.Queue[Payload]] = {}

    @classmethod
    @asynccontextmanager
    async def connect(cls, base_url: str, token: str | None) -> AsyncIterator[LegacyWs]:
        async with connect(ws_url(base_url), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
            client = cls(ws)
            await client.send({"type": "connection_init", "payload": init_payload(token)})
            ack = await client.recv()
            assert ack["type"] == "connection_ack", ack
            yield client

    async def send(self, message: Payload) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = 10) -> Payload:
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), timeout)))

    async def start(self, query: str, **variables: Any) -> str:
        op = str(next(self.ids))
        await self.send({"type": "start", "id": op, "payload": {"query": query, "variables": variables}})
        return op

    async def next(self, op: str, timeout: float = 10) -> Payload:
        """The next `data` (or `error`) payload of operation `op`."""
        while True:
            message = await self.recv(timeout)
            if message.get("id") == op and message["type"] in ("data", "error"):
                return dict(message["payload"]) if message["type"] == "data" else {"errors": message["payload"]}

    async def execute(self, query: str, **variables: Any) -> Payload:
        return await self.next(await self.start(query, **variables))

    async def stop(self, op: str) -> None:
        await self.send({"type": "stop", "id": op})


def codes(payload: Payload) -> list[str]:
    errors = payload.get("errors") or []
    if isinstance(errors, dict):
        errors = [errors]
    return [str((e.get("extensions") or {}).get("code")) for e in errors]
