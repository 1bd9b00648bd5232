"""Shared fixtures. `mode` runs a test in both SPEC section 2 modes: `embedded`
(SQLite, in-process broker) and `distributed` (PostgreSQL + Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from api.settings import Settings
from tests.fixtures.processes import Proc, Server, start_server, start_worker
from tests.fixtures.services import REDIS_URL, RUN_ID, Databases, require_services

MODES = ["embedded", "distributed"]
WEBHOOK_SECRET = "whsec_suite_primary_0123456789"
JWT_SECRET = "suite-jwt-secret-0123456789abcdef"


@pytest.fixture(scope="session")
async def databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Databases]:
    dbs = Databases(tmp=tmp_path_factory.mktemp("dbs"))
    yield dbs
    await dbs.drop_all()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "distributed":
        require_services()
    return str(request.param)


def make_settings(database_url: str, distributed: bool, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        env="test",
        database_url=database_url,
        redis_url=REDIS_URL if distributed else None,
        redis_namespace=f"trackit-test-{RUN_ID}-{uuid.uuid4().hex[:6]}",
        stripe_webhook_secrets=[WEBHOOK_SECRET],
        jwt_secret=JWT_SECRET,
        sweep_interval_s=0.5,
        sweep_min_age_s=1.0,
        retry_base_s=0.2,
        retry_max_s=2.0,
        dev_secrets_file="/nonexistent/trackit-secrets.json",
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def settings(mode: str, databases: Databases) -> Settings:
    """Settings for a fresh, migrated database in `mode`."""
    url = await (databases.postgres_url() if mode == "distributed" else databases.sqlite_url())
    return make_settings(url, mode == "distributed")


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """Tortoise initialised on the test's database, in this test process."""
    from models.db import close_db, init_db

    await init_db(settings.database_url)
    yield settings
    await close_db()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Proc]]:
    """Children started by a test; all stopped at the end, logs kept in tmp_path."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.kill()


@pytest.fixture
def service(settings: Settings, tmp_path: Path, processes: list[Proc]) -> Server:
    """A running service in `mode`: one `serve` (plus one `worker` when distributed)."""
    if settings.distributed:
        processes.append(start_worker(settings, tmp_path))
    server = start_server(settings, tmp_path)
    processes.append(server)
    return server
