"""`/dashboard`: the admin dashboard, a static page with no build step."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# The page talks to its own origin only (HTTP and websocket), and runs no inline code.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def dashboard_page(request: Request) -> Response:
    """The dashboard's HTML; its script and style are under /dashboard/static/."""
    return FileResponse(STATIC / "dashboard.html", headers=_PAGE_HEADERS)


def dashboard_routes() -> list[BaseRoute]:
    """Routes mounted by `api.app.create_app`."""
    return [
        Route("/dashboard", dashboard_page, methods=["GET", "HEAD"]),
        Mount("/dashboard/static", app=StaticFiles(directory=STATIC), name="dashboard-static"),
    ]
