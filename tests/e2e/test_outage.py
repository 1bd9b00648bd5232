"""PostgreSQL goes away in the middle of a load of webhooks: every request is answered
200 (and then the event is stored) or 503 (Stripe retries it); nothing answered 200 is
missing afterwards, and Stripe's retries of the 503s are all stored once it is back."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.processes import Proc, Server, start_server
from tests.fixtures.services import Databases, RedisServer, TcpProxy, db_rows, require_services
from tests.fixtures.stripe_events import body_of, event, payment_intent, sign, transfer

pytestmark = pytest.mark.postgres

DELIVERIES = 600
CUT_AFTER = 150  # answers before the database is cut off
REFUSED_BEFORE_RESTORE = 60  # 503s seen before it comes back


@pytest.fixture
async def outage(databases: Databases, tmp_path: Path) -> AsyncIterator[tuple[Settings, Settings, TcpProxy]]:
    """Settings of a fresh database reached through a proxy the test cuts, and the direct ones."""
    require_services()
    redis = RedisServer(tmp_path).start()
    direct = make_settings(await databases.postgres_url(), True, redis_url=redis.url)
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = direct.model_copy(
        update={"database_url": direct.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")}
    )
    assert proxied.database_url != direct.database_url
    try:
        yield direct, proxied, proxy
    finally:
        proxy.cut()
        redis.kill()


def deliveries(n: int) -> list[dict[str, Any]]:
    return [event("transfer.created", transfer()) if i % 2 else event("payment_intent.succeeded", payment_intent())
            for i in range(n)]


async def stored_ids(settings: Settings) -> set[str]:
    return {str(r["id"]) for r in await db_rows(settings.database_url, "SELECT id FROM webhook_event")}


@pytest.mark.timeout(240)
async def test_every_answer_is_200_and_stored_or_503_through_a_database_cut_mid_load(
    outage: tuple[Settings, Settings, TcpProxy], tmp_path: Path, processes: list[Proc]
) -> None:
    direct, proxied, proxy = outage
    server: Server = start_server(proxied, tmp_path)
    processes.append(server)
    answers: dict[str, int] = {}
    counts: Counter[int] = Counter()
    cut, refused_enough = asyncio.Event(), asyncio.Event()

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:

        async def post(evt: dict[str, Any]) -> int:
            body = body_of(evt)
            response = await client.post(
                "/webhooks/stripe", content=body,
                headers={"Stripe-Signature": sign(body, server.secret), "Content-Type": "application/json"},
            )
            return response.status_code

        async def poster(queue: asyncio.Queue[dict[str, Any]]) -> None:
            while not queue.empty():
                evt = queue.get_nowait()
                status = answers[evt["id"]] = await post(evt)
                counts[status] += 1
                # The outage follows the load's progress, not the clock.
                if not cut.is_set() and sum(counts.values()) >= CUT_AFTER:
                    cut.set()
                    proxy.cut()
                if cut.is_set() and not refused_enough.is_set() and counts[503] >= REFUSED_BEFORE_RESTORE:
                    refused_enough.set()
                    proxy.restore()

        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent = deliveries(DELIVERIES)
        for evt in sent:
            queue.put_nowait(evt)
        await asyncio.gather(*(poster(queue) for _ in range(8)))
        assert cut.is_set() and refused_enough.is_set(), f"the outage happened mid-load: {counts}"

        assert set(counts) <= {200, 503}, f"every answer is 200 or 503: {counts}"
        assert counts[200] >= CUT_AFTER and counts[503] >= REFUSED_BEFORE_RESTORE, counts
        stored = await stored_ids(direct)
        acknowledged = {i for i, s in answers.items() if s == 200}
        assert not acknowledged - stored, f"{len(acknowledged - stored)} events answered 200 are missing"
        assert stored <= set(answers), "nothing stored that was never sent"

        # Stripe retries what was refused; once the database is back, all of it is stored.
        refused = [evt for evt in sent if answers[evt["id"]] == 503]
        retried = Counter([await post(evt) for evt in refused])
        assert retried == Counter({200: len(refused)}), retried
        assert await stored_ids(direct) == {evt["id"] for evt in sent}
        assert (await client.get("/readyz")).status_code == 200
    assert server.popen is not None and server.popen.poll() is None, "serve survived the outage"
