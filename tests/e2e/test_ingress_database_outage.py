"""The database cannot store: 503 (Stripe retries), nothing acknowledged, nothing stored;
once it can again, the same delivery is stored and reconciled."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from api.settings import Settings
from tests.fixtures.processes import HTTP, Proc, Server, start_server, start_worker
from tests.fixtures.services import TcpProxy, db_rows, wait_until
from tests.fixtures.stripe_events import event

STORAGE = "trackit_webhook_requests_rejected_total"


def unhandled() -> dict[str, object]:
    return event("customer.created", {"id": "cus_outage", "object": "customer"})


async def reconciled(settings: Settings, event_id: str) -> None:
    async def ignored() -> bool:
        rows = await db_rows(settings.database_url, "SELECT status FROM webhook_event WHERE id = $1", event_id)
        return bool(rows) and rows[0]["status"] == "IGNORED"

    await wait_until(ignored, timeout=30, message=f"{event_id} reconciled after the outage")


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
async def test_sqlite_locked_by_another_writer_answers_503_and_stores_nothing(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    # A short busy timeout (a PRAGMA from the URL) keeps the test quick; the default is 5 s.
    settings = settings.model_copy(update={"database_url": settings.database_url + "?busy_timeout=200"})
    server = start_server(settings, tmp_path)
    processes.append(server)
    path = settings.database_url.split("://", 1)[1].split("?", 1)[0]
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the database's single write lock
    evt = unhandled()
    try:
        before = server.metric(STORAGE, reason="storage_unavailable")
        refused = server.post_event(evt)
        assert refused.status_code == 503 and "error" in refused.json()
        assert server.metric(STORAGE, reason="storage_unavailable") == before + 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    rows = await db_rows(settings.database_url, "SELECT id FROM webhook_event WHERE id = $1", evt["id"])
    assert rows == [], "a 503 must not have stored the event"
    # Stripe's retry of the same delivery is a new event to us, stored and reconciled.
    retried = server.post_event(evt)
    assert retried.status_code == 200 and retried.json() == {"received": True, "duplicate": False}
    await reconciled(settings, str(evt["id"]))


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
async def test_postgres_unreachable_answers_503_and_readyz_names_the_database(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    try:
        through_proxy = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert through_proxy != settings.database_url
        settings = settings.model_copy(update={"database_url": through_proxy})
        processes.append(start_worker(settings, tmp_path))
        server: Server = start_server(settings, tmp_path)
        processes.append(server)
        assert server.post_event(unhandled()).status_code == 200

        proxy.cut()
        evt = unhandled()
        refused = server.post_event(evt)
        assert refused.status_code == 503 and "error" in refused.json()
        ready = HTTP.get(f"{server.base_url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert [f.split(":")[0] for f in ready.json()["failed"]] == ["database"]

        proxy.restore()
        retried = server.post_event(evt)
        assert retried.status_code == 200 and retried.json() == {"received": True, "duplicate": False}
        assert HTTP.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
        await reconciled(settings, str(evt["id"]))
    finally:
        proxy.cut()
