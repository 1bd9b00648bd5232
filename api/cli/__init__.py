"""The `trackit` command line."""

from __future__ import annotations

import typer

from api.cli import audit, backfill, events, service, simulate, stuck

app = typer.Typer(help="Trackit reconciliation service", no_args_is_help=True, add_completion=False)
service.register(app)
app.add_typer(audit.app, name="audit")
app.add_typer(events.app, name="events")
simulate.register(app)
backfill.register(app)
stuck.register(app)


def main() -> None:
    app()
