"""The typed context built per request (HTTP) or per connection (websocket)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from api.settings import Settings
from api.tokens import InvalidToken, Viewer, viewer_from_header
from schema.errors import Forbidden, Unauthenticated
from schema.loaders import Loaders
from schema.shared_results import SharedResults
from tasks.broadcast import Broadcast


@dataclass(eq=False)
class Context:
    settings: Settings
    broadcast: Broadcast
    loaders: Loaders
    request: Request | WebSocket | None = None
    viewer: Viewer | None = None
    # Why the token was refused, so the error says "expired" rather than "sign in".
    auth_error: str | None = None
    # Set by strawberry from the websocket's `connection_init` payload.
    connection_params: dict[str, Any] | None = field(default=None)
    # Subscription results shared by the sockets of this process (schema/shared_results.py).
    shared_results: SharedResults | None = None

    def authenticate(self, authorization: str | None) -> None:
        """Set the viewer from an `Authorization` value; a bad token leaves none."""
        try:
            self.viewer = viewer_from_header(self.settings, authorization)
            self.auth_error = None
        except InvalidToken as exc:
            self.viewer, self.auth_error = None, f"invalid token: {exc}"

    def require_viewer(self) -> Viewer:
        """The signed-in viewer, or UNAUTHENTICATED."""
        if self.viewer is None:
            raise Unauthenticated(self.auth_error) if self.auth_error else Unauthenticated()
        return self.viewer

    def require_admin(self) -> Viewer:
        """The signed-in admin, or UNAUTHENTICATED / FORBIDDEN."""
        viewer = self.require_viewer()
        if not viewer.is_admin:
            raise Forbidden("only an admin may do this")
        return viewer

    @property
    def actor(self) -> str:
        """Who the audit log names for a mutation: `admin:<sub>` or `user:<id>`."""
        viewer = self.require_viewer()
        return f"{viewer.role}:{viewer.sub}"


Info = strawberry.Info[Context, None]
