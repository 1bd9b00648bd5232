"""`trackit audit verify`: walk the hash chain and name the first broken entry."""

from __future__ import annotations

import asyncio

import typer

from api.settings import ConfigError, get_settings
from models.audit import ChainReport, verify_chain

app = typer.Typer(help="The audit log", no_args_is_help=True)


@app.callback()
def audit() -> None:
    """The audit log."""


@app.command()
def verify() -> None:
    """Check every entry's link and hash; exit 1 naming the first broken entry."""
    try:
        settings = get_settings()
    except ConfigError as exc:
        typer.echo(f"trackit: {exc}", err=True)
        raise typer.Exit(2) from None
    report = asyncio.run(_verify(settings.database_url))
    if report.first_broken_id is not None:
        typer.echo(
            f"audit chain BROKEN at entry {report.first_broken_id}: {report.reason} "
            f"({report.checked} entries before it are intact)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit chain OK: {report.checked} entries verified")


async def _verify(database_url: str) -> ChainReport:
    from models.db import close_db, init_db

    await init_db(database_url)
    try:
        return await verify_chain()
    finally:
        await close_db()
