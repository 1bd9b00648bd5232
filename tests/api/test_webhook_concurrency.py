"""Concurrent deliveries of one event id: one row, one job, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis

from api.settings import Settings
from tests.fixtures.processes import Proc, start_server
from tests.fixtures.services import db_rows, wait_until
from tests.fixtures.stripe_events import body_of, event, sign

DELIVERIES = 50


async def queued_messages(settings: Settings) -> list[dict[str, object]]:
    """The `reconcile.event` messages waiting in this test's Redis namespace."""
    client = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        found = []
        async for key in client.scan_iter(match=f"{settings.redis_namespace}:dramatiq:*.msgs"):
            found += [orjson.loads(raw) for raw in (await client.hgetall(key)).values()]
        return found
    finally:
        await client.aclose()


async def test_fifty_concurrent_deliveries_store_one_row_and_enqueue_one_job(
    settings: Settings, tmp_path: Path, processes: list[Proc]
) -> None:
    # No worker in distributed mode: the job stays in Redis where it can be counted.
    server = start_server(settings, tmp_path)
    processes.append(server)
    event_type = "customer.concurrency_probe"
    evt = event(event_type, {"id": "cus_race", "object": "customer"})
    body = body_of(evt)
    headers = {"Stripe-Signature": sign(body, server.secret), "Content-Type": "application/json"}

    async with httpx.AsyncClient(timeout=30, verify=False, limits=httpx.Limits(max_connections=DELIVERIES)) as client:
        url = f"{server.base_url}/webhooks/stripe"
        responses = await asyncio.gather(*(client.post(url, content=body, headers=headers) for _ in range(DELIVERIES)))

    assert {r.status_code for r in responses} == {200}
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * (DELIVERIES - 1)
    rows = await db_rows(settings.database_url, "SELECT id FROM webhook_event WHERE id = $1", evt["id"])
    assert len(rows) == 1
    assert server.metric("trackit_webhook_events_received_total", type=event_type) == 1
    assert server.metric("trackit_webhook_events_duplicate_total") == DELIVERIES - 1

    if settings.distributed:

        async def one_job() -> list[dict[str, object]]:
            return [m for m in await queued_messages(settings) if m["args"] == [evt["id"]]]

        jobs = await wait_until(one_job, timeout=10, message="the job reaches Redis")
        assert len(jobs) == 1 and jobs[0]["actor_name"] == "reconcile.event"
    else:

        async def ignored() -> bool:
            rows = await db_rows(
                settings.database_url, "SELECT status, attempts FROM webhook_event WHERE id = $1", evt["id"]
            )
            return rows[0]["status"] == "IGNORED"

        await wait_until(ignored, timeout=20, message="the one job ran")
        moves = await db_rows(
            settings.database_url, "SELECT count(*) AS n FROM audit_entry WHERE event_id = $1", evt["id"]
        )
        assert moves[0]["n"] == 1


async def test_concurrent_inserts_of_one_id_return_new_exactly_once(db: Settings) -> None:
    """`store_event` on its own, 50 at once on one connection pool: exactly one is new."""
    from models.ingest import store_event

    evt = event("customer.created", {"id": "cus_race", "object": "customer"})
    results = await asyncio.gather(*(store_event(evt, body_of(evt).decode()) for _ in range(DELIVERIES)))
    assert results.count(True) == 1
    rows = await db_rows(db.database_url, "SELECT payload FROM webhook_event WHERE id = $1", evt["id"])
    assert len(rows) == 1 and rows[0]["payload"] == body_of(evt).decode()


async def test_deliveries_arriving_together_are_stored_together_each_with_its_own_answer(
    db: Settings, mode: str
) -> None:
    """Group commit: 40 deliveries at once (30 distinct ids, 10 redeliveries) share
    statements, yet each caller learns whether its own row is new (exactly one delivery
    of each id is), and every row is stored."""
    from models.ingest import store_event

    distinct = [event("customer.created", {"id": f"cus_g{i}", "object": "customer"}) for i in range(30)]
    deliveries = distinct + distinct[:10]
    results = await asyncio.gather(*(store_event(e, body_of(e).decode()) for e in deliveries))
    # Which of two concurrent deliveries of an id is "new" is not defined (they may go in
    # two statements in flight at once); that exactly one of them is, is.
    new_per_id: dict[str, int] = {}
    for delivered, is_new in zip(deliveries, results):
        new_per_id[delivered["id"]] = new_per_id.get(delivered["id"], 0) + int(is_new)
    assert new_per_id == {e["id"]: 1 for e in distinct}
    rows = await db_rows(db.database_url, "SELECT id FROM webhook_event")
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in distinct)


async def test_a_row_the_database_refuses_fails_only_its_own_delivery(db: Settings, mode: str) -> None:
    """PostgreSQL refuses NUL in text: the statement carrying that row fails, and the rows
    that shared it are stored one by one and answered as usual."""
    from models.ingest import store_event

    good = [event("customer.created", {"id": f"cus_n{i}", "object": "customer"}) for i in range(8)]
    bad = event("customer.created", {"id": "cus_nul", "object": "customer"})
    calls = [store_event(e, body_of(e).decode()) for e in good]
    calls.insert(4, store_event(bad, body_of(bad).decode() + "\x00"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    outcome_of_bad = results.pop(4)
    assert results == [True] * 8
    stored = await db_rows(db.database_url, "SELECT id FROM webhook_event")
    assert {e["id"] for e in good} <= {r["id"] for r in stored}
    if mode == "distributed":
        assert isinstance(outcome_of_bad, Exception)
        assert bad["id"] not in {r["id"] for r in stored}
    else:
        assert outcome_of_bad is True  # SQLite stores NUL in text
