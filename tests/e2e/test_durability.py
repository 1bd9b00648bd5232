"""Nothing acknowledged is lost: 200 events answered 200, the service SIGKILLed at once,
restarted: every event ends processed, each exactly once (one terminal move in the
audit log). In embedded mode the in-process queue dies with the server; the sweep that
`serve` runs at start-up is what recovers it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.settings import Settings
from tests.fixtures.processes import Proc, Server, start_server, start_worker
from tests.fixtures.services import db_rows, wait_until
from tests.fixtures.stripe_events import event

COUNT = 200


def post_all(server: Server, events: list[dict[str, object]]) -> list[int]:
    """Post concurrently, as Stripe does, so the worker is behind when the kill comes."""
    with httpx.Client(timeout=30, verify=False, limits=httpx.Limits(max_connections=8)) as client:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda e: server.post_event(e, client).status_code, events))


async def statuses(settings: Settings) -> dict[str, int]:
    rows = await db_rows(settings.database_url, "SELECT status, count(*) AS n FROM webhook_event GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}  # type: ignore[call-overload]


async def test_acknowledged_events_survive_sigkill_and_are_processed_once(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    first = settings.model_copy(update={"worker_threads": 1})
    if settings.distributed:
        processes.append(start_worker(first, tmp_path, name="worker-1"))
    server = start_server(first, tmp_path, name="serve-1")
    processes.append(server)
    events = [event("customer.created", {"id": f"cus_{i}", "object": "customer"}) for i in range(COUNT)]

    assert post_all(server, events) == [200] * COUNT
    for proc in processes:
        proc.kill()
    at_kill = await statuses(settings)
    assert sum(at_kill.values()) == COUNT, f"every acknowledged event is stored: {at_kill}"

    # Restarted with sweeps that would never come on their own in this test: in embedded
    # mode only the start-up sweep can find what the dead queue held.
    again = settings.model_copy(update={"sweep_interval_s": 3600.0, "sweep_min_age_s": 3600.0})
    if settings.distributed:
        # The worker's periodic sweep (and Redis's surviving queue) recover here.
        processes.append(start_worker(settings, tmp_path, name="worker-2"))
    processes.append(start_server(settings if settings.distributed else again, tmp_path, name="serve-2"))

    async def all_processed() -> bool:
        return (await statuses(settings)).get("IGNORED") == COUNT

    await wait_until(all_processed, timeout=90, interval=0.2, message=f"all {COUNT} processed; at kill: {at_kill}")
    moves = await db_rows(
        settings.database_url,
        "SELECT event_id, count(*) AS n FROM audit_entry WHERE to_status IS NOT NULL GROUP BY event_id",
    )
    assert len(moves) == COUNT and {m["n"] for m in moves} == {1}, "no event processed twice"
    attempts = await db_rows(settings.database_url, "SELECT DISTINCT attempts FROM webhook_event")
    assert [a["attempts"] for a in attempts] == [1]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
async def test_embedded_serve_sweeps_stranded_events_at_start_up(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    """Events stored RECEIVED, however young, are enqueued by a starting embedded server."""
    from models.db import close_db, init_db
    from models.ingest import store_event

    await init_db(settings.database_url)
    try:
        events = [event("customer.created", {"id": f"cus_{i}", "object": "customer"}) for i in range(5)]
        for evt in events:
            assert await store_event(evt, "{}")
    finally:
        await close_db()
    processes.append(
        start_server(settings.model_copy(update={"sweep_interval_s": 3600.0, "sweep_min_age_s": 3600.0}), tmp_path)
    )

    async def all_processed() -> bool:
        return (await statuses(settings)).get("IGNORED") == len(events)

    await wait_until(all_processed, timeout=30, message="the start-up sweep enqueued the stranded events")
