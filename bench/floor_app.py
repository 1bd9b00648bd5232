"""The floor: uvicorn + Starlette, a route that reads the body and answers JSON 200.

Run with the same uvicorn settings as `trackit serve`:
`uvicorn bench.floor_app:app --loop uvloop --http httptools --no-access-log --log-level warning`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    """Read the whole body, answer what the real route answers for a new event."""
    await request.body()
    return Response(b'{"received":true,"duplicate":false}', media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/stripe", accept, methods=["POST"]), Route("/healthz", healthz)])
