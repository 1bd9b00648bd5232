"""`trackit token`, `trackit migrate` and `trackit worker`, run as an operator runs them."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import jwt
import pytest

from api.settings import Settings
from tests.conftest import JWT_SECRET, make_settings
from tests.fixtures.processes import TRACKIT, settings_env
from tests.fixtures.services import RUN_ID, Databases, _pg_admin, _pg_url, db_rows, require_services


def trackit(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACKIT, *args], env=settings_env(settings), cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    """Settings for commands that need no running service."""
    return make_settings(f"sqlite://{tmp_path / 'cli.db'}", distributed=False)


def test_token_admin_is_a_signed_admin_jwt(offline: Settings, tmp_path: Path) -> None:
    done = trackit(offline, tmp_path, "token", "--admin")
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["role"] == "admin" and claims["sub"] and claims["exp"]


def test_token_user_carries_the_user_id(offline: Settings, tmp_path: Path) -> None:
    done = trackit(offline, tmp_path, "token", "--user", "12")
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert (claims["role"], claims["sub"]) == ("user", "12")


@pytest.mark.parametrize("args", [[], ["--admin", "--user", "3"]], ids=["neither", "both"])
def test_token_needs_exactly_one_of_admin_or_user(offline: Settings, tmp_path: Path, args: list[str]) -> None:
    done = trackit(offline, tmp_path, "token", *args)
    assert done.returncode == 2 and "--admin" in done.stderr and "--user" in done.stderr


def test_worker_refuses_embedded_mode_and_says_why(offline: Settings, tmp_path: Path) -> None:
    done = trackit(offline, tmp_path, "worker")
    assert done.returncode == 2
    assert "TRACKIT_REDIS_URL" in done.stderr and "serve" in done.stderr


TABLES = {"webhook_event", "audit_entry", "ledger_head", "debt", "pro_subscription", "payment", "user"}


async def test_migrate_creates_the_schema_on_a_new_sqlite_file(offline: Settings, tmp_path: Path) -> None:
    done = trackit(offline, tmp_path, "migrate")
    assert done.returncode == 0, done.stderr
    rows = await db_rows(offline.database_url, "SELECT name AS tablename FROM sqlite_master WHERE type = 'table'")
    assert TABLES <= {r["tablename"] for r in rows}
    assert trackit(offline, tmp_path, "migrate").returncode == 0, "migrating twice is harmless"


async def test_migrate_creates_the_schema_on_an_empty_postgres_database(
    databases: Databases, tmp_path: Path
) -> None:
    require_services()
    name = f"trackit_cli_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    databases.created = [*(databases.created or []), name]
    settings = make_settings(_pg_url(name), distributed=True)
    done = trackit(settings, tmp_path, "migrate")
    assert done.returncode == 0, done.stderr
    rows = await db_rows(settings.database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert TABLES <= {r["tablename"] for r in rows}
    assert trackit(settings, tmp_path, "migrate").returncode == 0, "migrating twice is harmless"
