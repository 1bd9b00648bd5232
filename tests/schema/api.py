"""Running operations against the schema in the test process, as a given viewer."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from strawberry.types import ExecutionResult

from api.settings import Settings
from api.tokens import issue_token
from schema.app import TrackitSchema, build_schema
from schema.context import Context
from schema.loaders import build_loaders
from schema.shared_results import SharedResults
from tasks.broadcast import Broadcast


def bearer(token: str | None) -> str | None:
    return None if token is None else f"Bearer {token}"


@dataclass
class Api:
    settings: Settings
    broadcast: Broadcast
    schema: TrackitSchema
    # As the view does: one per process, so subscriptions share results as they do live.
    shared_results: SharedResults = field(default_factory=SharedResults)

    def admin_token(self) -> str:
        return issue_token(self.settings, "ops-alice", "admin")

    def user_token(self, user_id: int) -> str:
        return issue_token(self.settings, str(user_id), "user")

    def expired_token(self, user_id: int) -> str:
        return issue_token(self.settings, str(user_id), "user", timedelta(seconds=-30))

    def forged_token(self) -> str:
        forged = self.settings.model_copy(update={"jwt_secret": "another-secret-0123456789abcdef-0"})
        return issue_token(forged, "ops-mallory", "admin")

    def context(self, token: str | None) -> Context:
        ctx = Context(
            settings=self.settings, broadcast=self.broadcast, loaders=build_loaders(), shared_results=self.shared_results
        )
        ctx.authenticate(bearer(token))
        return ctx

    async def execute(self, query: str, token: str | None = None, **variables: Any) -> ExecutionResult:
        return await self.schema.execute(query, variable_values=variables, context_value=self.context(token))

    async def data(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        """The result's data; fails the test on any error."""
        result = await self.execute(query, token, **variables)
        assert result.errors is None, [e.formatted for e in result.errors]
        assert result.data is not None
        return result.data

    async def subscribe(self, query: str, token: str | None = None, **variables: Any) -> AsyncGenerator[Any, None]:
        stream = await self.schema.subscribe(query, variable_values=variables, context_value=self.context(token))
        assert not isinstance(stream, ExecutionResult), stream
        return stream  # type: ignore[return-value]


def error_codes(result: ExecutionResult) -> list[str]:
    return [str((e.extensions or {}).get("code")) for e in result.errors or []]


async def start_api(settings: Settings) -> Api:
    broadcast = Broadcast(settings)
    await broadcast.start()
    return Api(settings, broadcast, build_schema(settings))
