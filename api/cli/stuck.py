"""`trackit reconcile-stuck`: records PENDING or PENDING_SETTLEMENT for too long are
looked up at Stripe; what Stripe says goes through the inbox like any webhook."""

from __future__ import annotations

import asyncio

import typer

from api.cli.operator import load_settings, operator_session, pickup_note, store_and_enqueue
from api.settings import Settings


def reconcile_stuck(
    older_than: float | None = typer.Option(
        None, "--older-than", min=0, help="Seconds a record may stay pending (default TRACKIT_STUCK_AFTER_S)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Ask Stripe and report; store nothing"),
) -> None:
    """Look up stuck pending records at Stripe and reconcile them from its answer."""
    settings = load_settings()
    if not settings.stripe_api_key:
        typer.echo("reconcile-stuck needs a Stripe secret key: set STRIPE_API_KEY (or TRACKIT_STRIPE_API_KEY)", err=True)
        raise typer.Exit(2)
    from api.stripe_api import StripeApiError

    threshold = settings.stuck_after_s if older_than is None else older_than
    try:
        lines, counts = asyncio.run(_check(settings, threshold, dry_run))
    except StripeApiError as exc:
        typer.echo(f"trackit reconcile-stuck: Stripe API failed: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)
    typer.echo(
        f"{counts['checked']} stuck records older than {threshold:g} s: {counts['stored']} events stored, "
        f"{counts['present']} already stored, {counts['nothing']} with nothing to apply"
    )
    if counts["stored"] and not dry_run:
        typer.echo(pickup_note(settings, fresh=True))


async def _check(settings: Settings, threshold: float, dry_run: bool) -> tuple[list[str], dict[str, int]]:
    from tqdm import tqdm

    from api.stripe_api import StripeApi
    from api.stripe_sync import ask_stripe, stuck_records

    counts = {"checked": 0, "stored": 0, "present": 0, "nothing": 0}
    lines: list[str] = []
    assert settings.stripe_api_key is not None
    async with operator_session(settings), StripeApi(settings.stripe_api_base, settings.stripe_api_key) as api:
        records = await stuck_records(threshold)
        for record in tqdm(records, unit=" records", desc="asking Stripe", leave=False, disable=None):
            finding = await ask_stripe(api, record)
            counts["checked"] += 1
            outcome = "nothing to apply"
            if finding.event is None:
                counts["nothing"] += 1
            elif dry_run:
                outcome = f"would store {finding.event['type']} {finding.event['id']}"
            elif await store_and_enqueue(finding.event):
                counts["stored"] += 1
                outcome = f"stored {finding.event['type']} {finding.event['id']}"
            else:
                counts["present"] += 1
                outcome = f"{finding.event['id']} already stored"
            lines.append(f"{finding.record}, pending {finding.age_s / 3600:.1f} h: {finding.note}: {outcome}")
    return lines, counts


def register(app: typer.Typer) -> None:
    """Add `reconcile-stuck` to the CLI."""
    app.command("reconcile-stuck")(reconcile_stuck)
