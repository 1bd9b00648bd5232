"""`trackit events list|retry`: the inbox, for the on-call engineer."""

from __future__ import annotations

import asyncio
import getpass

import typer

from api.cli.operator import load_settings, operator_session, pickup_note
from api.settings import Settings
from models.enums import WebhookEventStatus

app = typer.Typer(help="The webhook inbox: list events, retry dead ones", no_args_is_help=True)


@app.command("list")
def list_events(
    status: WebhookEventStatus | None = typer.Option(None, "--status", case_sensitive=False, help="Only this status"),
    event_type: str | None = typer.Option(None, "--type", help="Only this Stripe event type, e.g. transfer.created"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many, newest first"),
) -> None:
    """List stored webhook events, newest first."""
    settings = load_settings()
    rows = asyncio.run(_list(settings, status, event_type, limit))
    if not rows:
        typer.echo("no events")
        return
    header = ("ID", "TYPE", "STATUS", "TRIES", "RECEIVED", "LAST ERROR")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(5)]
    for row in (header, *rows):
        cells = [row[i].ljust(widths[i]) for i in range(5)]
        typer.echo("  ".join([*cells, row[5]]).rstrip())


async def _list(settings: Settings, status: WebhookEventStatus | None, event_type: str | None, limit: int) -> list[tuple[str, ...]]:
    from models.tables import WebhookEvent

    async with operator_session(settings):
        query = WebhookEvent.all()
        if status is not None:
            query = query.filter(status=status)
        if event_type:
            query = query.filter(type=event_type)
        events = await query.order_by("-received_at", "-id").limit(limit)
    return [
        (
            e.id, e.type, e.status.value, str(e.attempts),
            e.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            (e.last_error or "").replace("\n", " ")[:100],
        )
        for e in events
    ]


@app.command("retry")
def retry_events(
    event_ids: list[str] = typer.Argument(None, metavar="[ID]...", help="Event ids (evt_…)"),
    all_dead: bool = typer.Option(False, "--all-dead", help="Every DEAD event (of --type, if given)"),
    event_type: str | None = typer.Option(None, "--type", help="With --all-dead: only this event type"),
) -> None:
    """Send DEAD or RETRYING events back to RECEIVED and enqueue them."""
    ids = list(event_ids or [])
    if all_dead == bool(ids):
        typer.echo("give event ids, or --all-dead [--type T]", err=True)
        raise typer.Exit(2)
    if event_type and not all_dead:
        typer.echo("--type goes with --all-dead", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    actor = f"cli:{_operator()}"
    retried, failed = asyncio.run(_retry(settings, ids, all_dead, event_type, actor))
    for event_id, status in retried:
        typer.echo(f"{event_id}: {status}")
    for event_id, reason in failed:
        typer.echo(f"{event_id}: not retried: {reason}", err=True)
    typer.echo(f"retried {len(retried)}, refused {len(failed)}")
    if retried:
        typer.echo(pickup_note(settings, fresh=False))
    if failed:
        raise typer.Exit(1)


async def _retry(
    settings: Settings, ids: list[str], all_dead: bool, event_type: str | None, actor: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    from models.errors import DomainError
    from models.registration import retry_webhook_event
    from models.tables import WebhookEvent

    retried: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    async with operator_session(settings):
        if all_dead:
            query = WebhookEvent.filter(status=WebhookEventStatus.DEAD)
            if event_type:
                query = query.filter(type=event_type)
            ids = [str(i) for i in await query.order_by("received_at").values_list("id", flat=True)]
        for event_id in ids:
            try:
                event = await retry_webhook_event(event_id, actor=actor)
            except DomainError as exc:
                failed.append((event_id, str(exc)))
            else:
                retried.append((event_id, event.status.value))
    return retried, failed


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
