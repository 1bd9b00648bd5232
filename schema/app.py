"""The `/graphql` routes (filled by the GraphQL issue)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from api.settings import Settings
from tasks.broadcast import Broadcast


def graphql_routes(settings: Settings, broadcast: Broadcast) -> list[BaseRoute]:
    return []
