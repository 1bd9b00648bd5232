"""Tortoise configuration and the process-wide database lifecycle."""

from __future__ import annotations

import os
from typing import Any

from tortoise import Tortoise

MODEL_MODULES = ["models.tables"]
POOL_SIZE = 5
"""PostgreSQL connections per process (Tortoise's default maximum)."""


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config for one database URL (SQLite or PostgreSQL)."""
    return {
        "connections": {"default": _connection(database_url)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(database_url: str) -> str | dict[str, Any]:
    if database_url.startswith("sqlite"):
        # WAL lets readers (GraphQL) run beside the single writer.
        sep = "&" if "?" in database_url else "?"
        return f"{database_url}{sep}journal_mode=WAL&journal_size_limit=67108864"
    if database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        from tortoise.backends.base.config_generator import expand_db_url

        config = expand_db_url(database_url)
        # asyncpg resets every connection it takes back (`RESET ALL`, `UNLISTEN *`, ...):
        # one more round trip per transaction. We keep no session state (SET LOCAL and
        # transaction-level advisory locks only); open transactions are still rolled back.
        config["credentials"]["reset"] = _keep_session
        # Every connection opened at start and kept: asyncpg otherwise opens them when
        # concurrency first rises, closes them after 5 idle minutes and replaces each
        # after 50,000 queries, and each new one costs a connect plus re-preparing every
        # hot statement, in the middle of whatever request or batch needed it.
        config["credentials"].setdefault("minsize", POOL_SIZE)
        config["credentials"].setdefault("maxsize", POOL_SIZE)
        config["credentials"]["max_queries"] = 10_000_000
        config["credentials"]["max_inactive_connection_lifetime"] = 0
        return config
    return database_url


async def _keep_session(connection: Any) -> None:
    """asyncpg's pool `reset` hook: nothing to reset (see `_connection`)."""


# For the `tortoise` CLI (makemigrations); the service itself calls `init_db`.
TORTOISE_ORM = tortoise_config(os.environ.get("TRACKIT_DATABASE_URL", "sqlite://trackit.db"))


def is_postgres() -> bool:
    """Whether the default connection is PostgreSQL."""
    from tortoise.connection import get_connection

    return get_connection("default").capabilities.dialect == "postgres"


async def init_db(database_url: str) -> None:
    """Open the connections for this process (global fallback: see LIBRARY-NOTES)."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    # Tortoise caches each model's INSERT/UPDATE SQL by connection name for the life of
    # the process: after a re-init on another dialect (the test suite runs SQLite, then
    # PostgreSQL) the cached SQLite placeholders would reach PostgreSQL.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def migrate_db(database_url: str) -> None:
    """Apply the migration files in `models/migrations` (SQLite and PostgreSQL alike)."""
    from tortoise.migrations.api import migrate

    await migrate(config=tortoise_config(database_url))


async def close_db() -> None:
    await Tortoise.close_connections()
