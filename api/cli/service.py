"""`serve`, `worker`, `migrate`, `token`: running the service."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from datetime import timedelta

import typer

from api.cli.operator import load_settings
from api.tokens import issue_token

log = logging.getLogger("trackit.cli")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
) -> None:
    """Run the API (embedded mode also runs the worker and the sweeper in-process)."""
    import uvicorn

    from api.app import create_app
    from api.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)
    base = f"http://{host}:{port}"
    mode = "distributed (PostgreSQL/Redis)" if settings.distributed else "embedded (SQLite, in-process worker)"
    typer.echo(f"trackit serve: {mode}, database {settings.database_url}")
    typer.echo(f"  webhook:   POST {base}/webhooks/stripe")
    typer.echo(f"  graphql:   {base}/graphql")
    typer.echo(f"  dashboard: {base}/dashboard")
    typer.echo(f"  health:    {base}/healthz  {base}/readyz  {base}/metrics")
    if not settings.production:
        # What a developer needs to send signed events and open the dashboard; never
        # printed in production, where the secrets come from the environment.
        typer.echo(f"  secret:    {settings.stripe_webhook_secrets[0]}")
        typer.echo(f"  admin token: {issue_token(settings, 'admin', 'admin')}")
    uvicorn.run(
        create_app(settings), host=host, port=port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, log_config=None, timeout_graceful_shutdown=10,
        # Change payloads are a few hundred bytes: compressing them saves little and
        # costs ~43 KB of zlib state per socket and CPU per send (docs/benchmarks.md).
        ws_per_message_deflate=False,
    )


def worker(
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Serve this worker's /metrics on this port (default TRACKIT_WORKER_METRICS_PORT)"
    ),
) -> None:
    """Run a Dramatiq worker and the sweeper (distributed mode)."""
    from api.heap import freeze_startup_heap
    from api.logs import configure_logging
    from models.changes import set_enqueuer
    from models.db import close_db, init_db
    from tasks import runtime
    from tasks.broadcast import Broadcast
    from tasks.broker import configure_broker, start_worker
    from tasks.enqueue import EventSender
    from tasks.sweeper import run_sweeper

    settings = load_settings()
    configure_logging(settings)
    if not settings.distributed:
        typer.echo("trackit worker needs TRACKIT_REDIS_URL; embedded mode runs the worker inside `serve`", err=True)
        raise typer.Exit(2)
    if metrics_port or settings.worker_metrics_port:
        from api.metrics import serve_worker_metrics

        serve_worker_metrics(metrics_port or settings.worker_metrics_port or 0)
    runtime.start_loop_thread()
    runtime.run(init_db(settings.database_url))
    broadcast = Broadcast(settings)
    runtime.run(broadcast.start())
    broker = configure_broker(settings)
    # Re-enqueues after a domain commit go through a sender thread: never block the loop.
    sender = EventSender(broker)
    set_enqueuer(sender.submit)
    dramatiq_worker = start_worker(broker, settings)

    async def make_stop() -> asyncio.Event:
        return asyncio.Event()

    stop = runtime.run(make_stop())
    sweeping = runtime.submit(run_sweeper(settings, stop))
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    freeze_startup_heap()
    typer.echo(f"trackit worker: {settings.worker_threads} threads on {settings.redis_url}")
    stopping.wait()
    dramatiq_worker.stop()
    runtime.run(_set(stop))
    sweeping.result(timeout=30)
    set_enqueuer(None)
    sender.close()
    runtime.run(broadcast.close())
    runtime.run(close_db())


async def _set(event: asyncio.Event) -> None:
    event.set()


def migrate() -> None:
    """Apply the migration files to the configured database."""
    from models.db import close_db, migrate_db

    settings = load_settings()

    async def run() -> None:
        try:
            await migrate_db(settings.database_url)
        finally:
            # An open SQLite connection keeps a non-daemon thread: the command would hang.
            await close_db()

    asyncio.run(run())
    typer.echo(f"migrated {settings.database_url}")


def token(
    admin: bool = typer.Option(False, "--admin", help="A token for an operator"),
    user: int | None = typer.Option(None, "--user", help="A token for this user id"),
    sub: str = typer.Option("admin", help="The operator's name in an admin token"),
    hours: float = typer.Option(12.0, help="Lifetime in hours"),
) -> None:
    """Print a bearer token."""
    if admin == (user is not None):
        typer.echo("give exactly one of --admin or --user ID", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    ttl = timedelta(hours=hours)
    typer.echo(issue_token(settings, sub, "admin", ttl) if admin else issue_token(settings, str(user), "user", ttl))


def register(app: typer.Typer) -> None:
    for command in (serve, worker, migrate, token):
        app.command()(command)
