"""The `/dashboard` route (filled by the dashboard issue)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def dashboard_routes() -> list[BaseRoute]:
    return []
