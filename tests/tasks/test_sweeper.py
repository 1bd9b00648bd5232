"""The sweeper (SPEC section 6): it enqueues stranded RECEIVED events and due RETRYING
events, nothing else, and only one sweep runs at a time across processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import dramatiq
import pytest
from dramatiq.middleware import Middleware

from api.settings import Settings
from models.enums import WebhookEventStatus as S
from models.tables import WebhookEvent
from tasks.broker import configure_broker
from tasks.sweeper import SWEEPER_LOCK_KEY, run_sweeper, sweep_once
from tests.fixtures.services import wait_until


class Recorder(Middleware):
    """Records the event ids sent to `reconcile.event`; `hold` blocks senders until set."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.waiting = threading.Event()

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int) -> None:
        self.waiting.set()
        self.hold.wait(30)
        self.sent.append(message.args[0])


@pytest.fixture
async def sent(db: Settings) -> AsyncIterator[Recorder]:
    """An in-process broker whatever the database, recording what is enqueued."""
    broker = configure_broker(db.model_copy(update={"redis_url": None}))
    recorder = Recorder()
    broker.add_middleware(recorder)
    yield recorder
    recorder.hold.set()
    configure_broker(db.model_copy(update={"redis_url": None}))  # a clean one for the next test


async def store(event_id: str, status: S, age_s: float, due_in_s: float | None = None) -> None:
    now = datetime.now(timezone.utc)
    await WebhookEvent.create(
        id=event_id, type="customer.created", status=status, received_at=now - timedelta(seconds=age_s),
        next_attempt_at=None if due_in_s is None else now + timedelta(seconds=due_in_s), payload="{}",
    )


async def test_sweep_enqueues_stranded_and_due_events_only(db: Settings, sent: Recorder) -> None:
    await store("evt_stranded", S.RECEIVED, age_s=120)
    await store("evt_young", S.RECEIVED, age_s=0)  # its own enqueue is on its way
    await store("evt_due", S.RETRYING, age_s=600, due_in_s=-1)
    await store("evt_later", S.RETRYING, age_s=600, due_in_s=3600)
    for done in (S.PROCESSED, S.IGNORED, S.DEAD):
        await store(f"evt_{done.value.lower()}", done, age_s=600)

    settings = db.model_copy(update={"sweep_min_age_s": 60.0})
    assert await sweep_once(settings) == 2
    assert sorted(sent.sent) == ["evt_due", "evt_stranded"]


async def test_a_backlog_still_being_worked_through_is_not_sent_again_every_sweep(
    db: Settings, sent: Recorder
) -> None:
    await store("evt_stranded", S.RECEIVED, age_s=120)
    await store("evt_due", S.RETRYING, age_s=600, due_in_s=-1)
    settings = db.model_copy(update={"sweep_min_age_s": 60.0, "sweep_interval_s": 30.0})

    assert await sweep_once(settings) == 2
    assert await sweep_once(settings) == 0  # both still queued: nothing is sent twice
    assert sorted(sent.sent) == ["evt_due", "evt_stranded"]

    # Once the pause is over, a message the broker lost is sent again.
    await WebhookEvent.all().update(next_attempt_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    assert await sweep_once(settings) == 2


async def test_first_sweep_of_a_starting_embedded_server_takes_every_received_event(
    db: Settings, sent: Recorder
) -> None:
    await store("evt_just_now", S.RECEIVED, age_s=0)
    settings = db.model_copy(update={"sweep_min_age_s": 3600.0, "sweep_interval_s": 3600.0})
    stop = asyncio.Event()
    sweeping = asyncio.create_task(run_sweeper(settings, stop, first_min_age_s=0))
    try:
        await wait_until(lambda: sent.sent == ["evt_just_now"], message="swept at once")
    finally:
        stop.set()
        await sweeping


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
async def test_only_one_sweep_runs_at_a_time_on_postgres(db: Settings, sent: Recorder) -> None:
    """Two sweepers (as in two worker processes) at once: the second finds the advisory
    lock taken and enqueues nothing, so no event is sent twice by overlapping sweeps."""
    for i in range(5):
        await store(f"evt_{i}", S.RECEIVED, age_s=120)
    sent.hold.clear()
    first = asyncio.create_task(sweep_once(db))
    # The first sweep holds the lock while it sends: wait until it is inside the send.
    await asyncio.to_thread(sent.waiting.wait, 10)
    assert await sweep_once(db) == 0
    sent.hold.set()
    assert await first == 5
    assert sorted(sent.sent) == [f"evt_{i}" for i in range(5)]


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
async def test_sweep_skips_while_another_process_holds_the_lock(db: Settings, sent: Recorder) -> None:
    import asyncpg

    await store("evt_x", S.RECEIVED, age_s=120)
    other = await asyncpg.connect(db.database_url.replace("postgres://", "postgresql://", 1))
    try:
        await other.execute("SELECT pg_advisory_lock($1)", SWEEPER_LOCK_KEY)
        assert await sweep_once(db) == 0
        await other.execute("SELECT pg_advisory_unlock($1)", SWEEPER_LOCK_KEY)
        assert await sweep_once(db) == 1
    finally:
        await other.close()
    assert sent.sent == ["evt_x"]


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
async def test_sweep_on_redis_enqueues_one_message_per_event_in_one_round_trip(db: Settings) -> None:
    import orjson
    import redis.asyncio as aioredis

    ids = [f"evt_r{i}" for i in range(7)]
    for event_id in ids:
        await store(event_id, S.RECEIVED, age_s=120)
    configure_broker(db)
    try:
        assert await sweep_once(db) == len(ids)
        client = aioredis.Redis.from_url(db.redis_url or "")
        try:
            raw = await client.hgetall(f"{db.redis_namespace}:dramatiq:reconcile.msgs")
            queued = await client.llen(f"{db.redis_namespace}:dramatiq:reconcile")
        finally:
            await client.aclose()
        messages = [orjson.loads(m) for m in raw.values()]
        assert sorted(m["args"][0] for m in messages) == ids and queued == len(ids)
        assert {m["actor_name"] for m in messages} == {"reconcile.event"}
    finally:
        dramatiq.get_broker().flush_all()
        configure_broker(db.model_copy(update={"redis_url": None}))
