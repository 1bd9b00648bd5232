"""Redis dies during ingest: Stripe still gets 200 for every stored event, and once Redis
is back (empty: what it queued is lost) the sweeper gets every event processed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.settings import Settings
from tests.fixtures.processes import HTTP, Proc, start_server, start_worker
from tests.fixtures.services import RedisServer, db_rows, wait_until
from tests.fixtures.stripe_events import event


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
async def test_events_acknowledged_while_redis_is_down_are_all_processed_after_it_returns(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    redis = RedisServer(tmp_path).start()
    try:
        settings = settings.model_copy(update={"redis_url": redis.url})
        processes.append(start_worker(settings, tmp_path))
        server = start_server(settings, tmp_path)
        processes.append(server)
        events = [event("customer.created", {"id": f"cus_{i}", "object": "customer"}) for i in range(60)]
        with httpx.Client(timeout=10, verify=False) as client:
            for evt in events[:20]:
                assert server.post_event(evt, client).status_code == 200
            redis.kill()
            for evt in events[20:]:
                response = server.post_event(evt, client)
                assert response.status_code == 200, response.text
                assert response.json() == {"received": True, "duplicate": False}
            ready = client.get(f"{server.base_url}/readyz")
            assert ready.status_code == 503
            assert [f.split(":")[0] for f in ready.json()["failed"]] == ["broker"]

        redis.start()

        async def all_processed() -> bool:
            rows = await db_rows(
                settings.database_url, "SELECT count(*) AS n FROM webhook_event WHERE status = 'IGNORED'"
            )
            return rows[0]["n"] == len(events)

        await wait_until(all_processed, timeout=60, interval=0.2, message="every event processed after Redis returned")
        moves = await db_rows(
            settings.database_url,
            "SELECT event_id, count(*) AS n FROM audit_entry WHERE to_status IS NOT NULL GROUP BY event_id",
        )
        assert sorted(m["event_id"] for m in moves) == sorted(e["id"] for e in events)
        assert {m["n"] for m in moves} == {1}, "each event moved exactly once"
        assert HTTP.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
    finally:
        redis.kill()
