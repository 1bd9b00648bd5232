"""`/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import asyncio

import prometheus_client
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tortoise.connection import get_connection

from api import metrics
from api.settings import Settings


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _database_answers() -> str | None:
    try:
        await asyncio.wait_for(get_connection("default").execute_query("SELECT 1"), timeout=2)
        return None
    except Exception as exc:
        return f"database: {exc.__class__.__name__}: {exc}"


async def _broker_answers(settings: Settings) -> str | None:
    if not settings.distributed:
        return None
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.redis_url or "", socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
        return None
    except Exception as exc:
        return f"broker: {exc.__class__.__name__}: {exc}"
    finally:
        await client.aclose()


async def readyz(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    failures = [f for f in await asyncio.gather(_database_answers(), _broker_answers(settings)) if f]
    if failures:
        return JSONResponse({"status": "unavailable", "failed": failures}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    await metrics.refresh_backlog()
    return Response(prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST)
