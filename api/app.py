"""The Starlette app: one process, both modes. Embedded mode also runs the worker and
the sweeper in-process, on the server's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from dramatiq.brokers.redis import RedisBroker
from starlette.applications import Starlette
from starlette.routing import Route

from api.health import healthz, metrics_endpoint, readyz
from api.heap import freeze_startup_heap
from api.settings import Settings, get_settings
from api.webhooks import stripe_webhook
from frontend_stub.routes import dashboard_routes
from models.changes import set_enqueuer
from models.db import close_db, init_db, migrate_db
from schema.app import graphql_routes
from tasks import runtime
from tasks.broadcast import Broadcast
from tasks.broker import configure_broker, start_worker
from tasks.enqueue import EventSender, LoopSender
from tasks.sweeper import run_sweeper

log = logging.getLogger("trackit.app")


def create_app(settings: Settings | None = None) -> Starlette:
    """The whole HTTP surface of SPEC section 3; the mode follows from `settings`."""
    settings = settings or get_settings()
    broadcast = Broadcast(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.distributed:
            # Zero config: the embedded database is created and migrated on start.
            await migrate_db(settings.database_url)
        await init_db(settings.database_url)
        await broadcast.start()
        broker = configure_broker(settings)
        sender: EventSender | LoopSender
        if isinstance(broker, RedisBroker) and settings.redis_url:
            # Sent from this loop, batched per loop pass: no thread contending for the GIL.
            sender = LoopSender(broker, settings.redis_url)
        else:
            sender = EventSender(broker)
        app.state.sender = sender
        # Domain changes that re-enqueue events (registrations, manual retries) use it too.
        set_enqueuer(sender.submit)
        stop = asyncio.Event()
        worker, sweeper = None, None
        if not settings.distributed:
            runtime.bind_loop(asyncio.get_running_loop())
            worker = start_worker(broker, settings)
            # The in-process queue died with the last server: everything RECEIVED is
            # stranded, whatever its age, so the first sweep takes it all.
            sweeper = asyncio.create_task(run_sweeper(settings, stop, first_min_age_s=0))
        freeze_startup_heap()
        try:
            yield
        finally:
            stop.set()
            set_enqueuer(None)
            if isinstance(sender, LoopSender):
                await sender.aclose()
            else:
                await asyncio.to_thread(sender.close)
            if worker is not None:
                # Worker threads wait on this loop: stop them off the loop.
                await asyncio.to_thread(worker.stop)
            if sweeper is not None:
                await sweeper
            await broadcast.close()
            await close_db()

    routes = [
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *graphql_routes(settings, broadcast),
        *dashboard_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.broadcast = broadcast
    return app
