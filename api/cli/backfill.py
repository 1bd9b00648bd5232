"""`trackit backfill --since`: store the events the webhook missed, from Stripe's Events
API (which keeps 30 days). Only absent events are stored; the new ones are enqueued."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import typer

from api.cli.operator import load_settings, operator_session, pickup_note, store_and_enqueue
from api.settings import Settings

RETENTION = timedelta(days=30)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime) -> datetime:
    """A date, a datetime (ISO 8601, UTC unless it says otherwise) or a duration back from now (`36h`, `3d`)."""
    match = _DURATION.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a date (2026-11-01), a datetime nor a duration (12h, 3d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def backfill(
    since: str = typer.Option(..., "--since", help="From when: a date (2026-11-01), a datetime, or a duration (12h, 3d)"),
    all_types: bool = typer.Option(False, "--all-types", help="Store every event type, not only the ones Trackit handles"),
    page_size: int = typer.Option(100, "--page-size", min=1, max=100, help="Events per Events API page"),
) -> None:
    """Page Stripe's Events API and store the events the webhook missed."""
    settings = load_settings()
    now = datetime.now(timezone.utc)
    start = parse_since(since, now)
    if now - start > RETENTION:
        days = (now - start).total_seconds() / 86400
        typer.echo(
            f"--since {since} is {days:.0f} days ago: Stripe's Events API keeps only the last 30 days. "
            f"Use a date after {(now - RETENTION):%Y-%m-%d %H:%M} UTC.",
            err=True,
        )
        raise typer.Exit(2)
    if not settings.stripe_api_key:
        typer.echo("backfill needs a Stripe secret key: set STRIPE_API_KEY (or TRACKIT_STRIPE_API_KEY)", err=True)
        raise typer.Exit(2)
    types = None
    if not all_types:
        from tasks.handlers import HANDLERS

        types = sorted(HANDLERS)
    from api.stripe_api import StripeApiError

    typer.echo(f"backfill from {start:%Y-%m-%d %H:%M:%S} UTC via {settings.stripe_api_base}")
    try:
        stored, present = asyncio.run(_backfill(settings, int(start.timestamp()), types, page_size))
    except StripeApiError as exc:
        typer.echo(f"trackit backfill: Stripe API failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"stored {stored} missing events, {present} already present")
    if stored:
        typer.echo(pickup_note(settings, fresh=True))


async def _backfill(settings: Settings, created_gte: int, types: list[str] | None, page_size: int) -> tuple[int, int]:
    from tqdm import tqdm

    from api.stripe_api import StripeApi

    stored = present = 0
    assert settings.stripe_api_key is not None
    async with operator_session(settings), StripeApi(settings.stripe_api_base, settings.stripe_api_key) as api:
        with tqdm(unit=" events", desc="events", leave=False, disable=None) as progress:
            async for page in api.event_pages(created_gte, types, page_size):
                for event in page:
                    if await store_and_enqueue(event):
                        stored += 1
                    else:
                        present += 1
                    progress.update(1)
                progress.set_postfix(stored=stored, present=present)
    return stored, present


def register(app: typer.Typer) -> None:
    """Add `backfill` to the CLI."""
    app.command("backfill")(backfill)
