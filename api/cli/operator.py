"""What the operator's commands share: settings, the database, and enqueuing the events
they store or retry, in this process and without a running worker of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import typer
from pydantic import ValidationError

from api.settings import ConfigError, Settings, get_settings


def load_settings() -> Settings:
    """The settings, or a clear message and exit code 2 (bad configuration)."""
    try:
        return get_settings()
    except ConfigError as exc:
        typer.echo(f"trackit: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        lines = [f"  TRACKIT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
        typer.echo("trackit: invalid configuration:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from None


@asynccontextmanager
async def operator_session(settings: Settings) -> AsyncIterator[None]:
    """Open the database; in distributed mode also the broker (enqueues go to the
    workers) and the broadcast (dashboards see the changes made here)."""
    from models.changes import set_enqueuer
    from models.db import close_db, init_db

    await init_db(settings.database_url)
    broadcast = None
    if settings.distributed:
        from tasks.actors import reconcile_event
        from tasks.broadcast import Broadcast
        from tasks.broker import configure_broker

        configure_broker(settings)

        def send(event_id: str) -> None:
            reconcile_event.send(event_id)

        set_enqueuer(send)
        broadcast = Broadcast(settings)
        await broadcast.start()
    try:
        yield
    finally:
        set_enqueuer(None)
        if broadcast is not None:
            await broadcast.close()
        await close_db()


async def store_and_enqueue(event: dict[str, Any]) -> bool:
    """Store a Stripe event in the inbox unless present; enqueue it when new."""
    from models.changes import enqueue
    from models.ingest import store_event

    is_new = await store_event(event, orjson.dumps(event).decode())
    if is_new:
        enqueue([str(event["id"])])
    return is_new


def pickup_note(settings: Settings, *, fresh: bool) -> str:
    """Who reconciles what this command put in the inbox."""
    if settings.distributed:
        return "enqueued: the workers reconcile them now"
    wait = settings.sweep_interval_s + (settings.sweep_min_age_s if fresh else 0)
    return (
        "embedded mode: this command has no worker; the running `trackit serve` picks "
        f"RECEIVED events up at its next sweep (within about {wait:g} s)"
    )
