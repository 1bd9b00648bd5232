"""The `trackit` command line."""

from __future__ import annotations

import typer

from api.cli import audit, service

app = typer.Typer(help="Trackit reconciliation service", no_args_is_help=True, add_completion=False)
service.register(app)
app.add_typer(audit.app, name="audit")


def main() -> None:
    app()
