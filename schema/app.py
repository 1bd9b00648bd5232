"""The `/graphql` routes: one Strawberry view on HTTP (GET for queries, POST) and on
websockets (`graphql-transport-ws` and the legacy `graphql-ws`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext
from strawberry.types.unset import UnsetType

from api.settings import Settings
from schema.context import Context
from schema.errors import annotate_errors
from schema.loaders import build_loaders
from schema.mutations import Mutation
from schema.queries import Query
from schema.shared_results import SharedEventExecutor, SharedResults
from schema.subscriptions import Subscription
from schema.websockets import LegacyWSHandler, TransportWSHandler, authenticate_socket
from tasks.broadcast import Broadcast

MAX_ALIASES = 20
# Distinct operation texts whose parsed document is kept: every dashboard sends the same
# few, and a socket's subscription keeps its document for hours (one copy for all).
PARSED_DOCUMENTS = 256


class TrackitSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        annotate_errors(errors)


def build_schema(settings: Settings) -> TrackitSchema:
    """The schema of SPEC section 7 with the limits of section 8 from `settings`."""
    depth, tokens = settings.max_query_depth, settings.max_query_tokens
    # The limiters' rule classes, built once: built per operation (as the limiters do)
    # they were ~4 KB that each open subscription kept.
    limits = [
        *QueryDepthLimiter(max_depth=depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    # Factories, so each operation gets fresh extension instances.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=tokens),
        lambda: AddValidationRules(limits),
        lambda: ParserCache(maxsize=PARSED_DOCUMENTS),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return TrackitSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions,
        execution_context_class=SharedEventExecutor,
    )


class TrackitGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, settings: Settings, broadcast: Broadcast) -> None:
        super().__init__(
            build_schema(settings), graphql_ide=None if settings.production else "graphiql"
        )
        self.settings, self.broadcast = settings, broadcast
        self.shared_results = SharedResults()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        is_socket = isinstance(request, WebSocket)
        context = Context(
            settings=self.settings,
            broadcast=self.broadcast,
            # A socket lives for hours: its loaders batch but never cache.
            loaders=build_loaders(cache=not is_socket),
            request=request,
            shared_results=self.shared_results,
        )
        if not is_socket:
            context.authenticate(request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        authenticate_socket(context)
        return await super().on_ws_connect(context)


def graphql_routes(settings: Settings, broadcast: Broadcast) -> list[BaseRoute]:
    """`/graphql` on both HTTP and websocket (a Mount would break the bare path)."""
    view: Any = TrackitGraphQL(settings, broadcast)
    return [Route("/graphql", view, methods=["GET", "POST"]), WebSocketRoute("/graphql", view)]
