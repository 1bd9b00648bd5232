"""`serve`, `worker`, `migrate`, `token`: running the service."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from datetime import timedelta

import typer

from api.settings import ConfigError, Settings, get_settings
from api.tokens import issue_token

log = logging.getLogger("trackit.cli")


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        typer.echo(f"trackit: {exc}", err=True)
        raise typer.Exit(2) from None


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
) -> None:
    """Run the API (embedded mode also runs the worker and the sweeper in-process)."""
    import uvicorn

    from api.app import create_app
    from api.logs import configure_logging

    settings = _settings()
    configure_logging(settings)
    base = f"http://{host}:{port}"
    mode = "distributed (PostgreSQL/Redis)" if settings.distributed else "embedded (SQLite, in-process worker)"
    typer.echo(f"trackit serve: {mode}, database {settings.database_url}")
    if not settings.production:
        typer.echo(f"  webhook:   POST {base}/webhooks/stripe")
        typer.echo(f"  secret:    {settings.stripe_webhook_secrets[0]}")
        typer.echo(f"  graphql:   {base}/graphql")
        typer.echo(f"  dashboard: {base}/dashboard")
        typer.echo(f"  admin token: {issue_token(settings, 'admin', 'admin')}")
    uvicorn.run(
        create_app(settings), host=host, port=port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, timeout_graceful_shutdown=10,
    )


def worker() -> None:
    """Run a Dramatiq worker and the sweeper (distributed mode)."""
    from api.logs import configure_logging
    from models.db import close_db, init_db
    from tasks import runtime
    from tasks.broadcast import Broadcast
    from tasks.broker import configure_broker, start_worker
    from tasks.sweeper import run_sweeper

    settings = _settings()
    configure_logging(settings)
    if not settings.distributed:
        typer.echo("trackit worker needs TRACKIT_REDIS_URL; embedded mode runs the worker inside `serve`", err=True)
        raise typer.Exit(2)
    runtime.start_loop_thread()
    runtime.run(init_db(settings.database_url))
    broadcast = Broadcast(settings)
    runtime.run(broadcast.start())
    broker = configure_broker(settings)
    dramatiq_worker = start_worker(broker, settings)

    async def make_stop() -> asyncio.Event:
        return asyncio.Event()

    stop = runtime.run(make_stop())
    sweeping = runtime.submit(run_sweeper(settings, stop))
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    typer.echo(f"trackit worker: {settings.worker_threads} threads on {settings.redis_url}")
    stopping.wait()
    dramatiq_worker.stop()
    runtime.run(_set(stop))
    sweeping.result(timeout=30)
    runtime.run(broadcast.close())
    runtime.run(close_db())


async def _set(event: asyncio.Event) -> None:
    event.set()


def migrate() -> None:
    """Apply the migration files to the configured database."""
    from models.db import migrate_db

    settings = _settings()
    asyncio.run(migrate_db(settings.database_url))
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
    settings = _settings()
    ttl = timedelta(hours=hours)
    typer.echo(issue_token(settings, sub, "admin", ttl) if admin else issue_token(settings, str(user), "user", ttl))


def register(app: typer.Typer) -> None:
    for command in (serve, worker, migrate, token):
        app.command()(command)
