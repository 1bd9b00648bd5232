"""Websocket authentication (SPEC section 8): the `connection_init` payload carries
`{"Authorization": "Bearer <jwt>"}`; a socket without a valid token is closed before
any operation runs."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from schema.context import Context
from schema.shared_results import CURRENT_OPERATION, SocketOperation

UNAUTHORIZED = 4401
# What strawberry's graphql-transport-ws handler closes with on a ConnectionRejectionError.
STRAWBERRY_REJECTION = 4403


def authenticate_socket(context: Context) -> None:
    """Set the viewer from `connection_init`; reject the socket without a valid token."""
    params = context.connection_params or {}
    authorization = next(
        (v for k, v in params.items() if k.lower() == "authorization" and isinstance(v, str)), None
    )
    context.authenticate(authorization)
    if context.viewer is None:
        reason = context.auth_error or 'no token: send {"Authorization": "Bearer <jwt>"} in connection_init'
        # Legacy graphql-ws sends this payload in its `connection_error` message.
        raise ConnectionRejectionError({"message": reason, "extensions": {"code": "UNAUTHENTICATED"}})


class _UnauthorizedClose(AsyncWebSocketAdapter):
    """Closes with 4401 where strawberry would close a rejected connection with 4403:
    the reference `graphql-ws` client gives up at once on 4401 but retries 4403 for a
    minute, and our only rejection is a missing or bad token."""

    def __init__(self, inner: AsyncWebSocketAdapter) -> None:
        self.inner = inner
        self.view = inner.view

    def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        return self.inner.iter_json(ignore_parsing_errors=ignore_parsing_errors)

    async def send_json(self, message: Mapping[str, object]) -> None:
        await self.inner.send_json(message)

    async def close(self, code: int, reason: str) -> None:
        if code == STRAWBERRY_REJECTION:
            code, reason = UNAUTHORIZED, "Unauthorized"
        await self.inner.close(code, reason)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, closing an unauthenticated socket with 4401; a `next`
    message whose result other sockets share is encoded once for all of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websocket = _UnauthorizedClose(self.websocket)
        socket = getattr(self.websocket.inner, "ws", None)
        self._send_text = socket.send_text if isinstance(socket, WebSocket) else None

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        if self._send_text is not None:
            # Runs in the operation's own task: its resolver reads it (a FeedGroup may
            # write this operation's `next` messages to the socket for it).
            CURRENT_OPERATION.set(SocketOperation(
                operation.id, self._send_text, lambda: self.operations.get(operation.id) is operation
            ))
        await super().run_operation(operation)

    async def send_message(self, message: Message) -> None:
        shared = self.context.shared_results
        payload = message.get("payload")
        if (
            message["type"] == "next" and shared is not None and self._send_text is not None
            and isinstance(payload, dict) and payload.keys() == {"data"}
        ):
            data = shared.encoded(payload["data"], _compact_json)
            await self._send_text(f'{{"id":{json.dumps(message["id"])},"type":"next","payload":{{"data":{data}}}}}')
            return
        await super().send_message(message)


def _compact_json(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


class _AnyOperation:
    """What the legacy handler calls `subscribe`, running queries and mutations too."""

    def __init__(self, schema: BaseSchema) -> None:
        self._schema = schema

    async def subscribe(
        self, query: str | None, variable_values: dict[str, Any] | None = None,
        context_value: Any = None, root_value: Any = None, operation_name: str | None = None,
    ) -> Any:
        return await self._schema.stream(query, variable_values, context_value, root_value, operation_name)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws (subscriptions-transport-ws), which carried queries and
    mutations as well; strawberry's handler alone runs subscriptions only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = _AnyOperation(self.schema)  # type: ignore[assignment]
