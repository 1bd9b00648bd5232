"""PostgreSQL + Redis with real `trackit worker` processes: two workers racing over a
shuffled, duplicated backlog, and a worker killed with SIGKILL in the middle of it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import dramatiq
import pytest

from api.settings import Settings
from models.audit import verify_chain
from models.tables import AuditEntry
from tasks.actors import reconcile_event
from tests.fixtures.processes import Proc, start_worker
from tests.fixtures.services import wait_until
from tests.tasks.event_mix import Mix, build_mix, differences, unfinished
from tests.tasks.inbox import store

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("mode", ["distributed"], indirect=True)]


async def send_all(mix: Mix, rng: random.Random) -> int:
    """Store every delivery (30 % redeliveries, shuffled) and send a message for each."""
    deliveries = mix.deliveries(0.3, rng)
    for start in range(0, len(deliveries), 16):
        await asyncio.gather(*(store(evt) for evt in deliveries[start : start + 16]))
    ids = [e["id"] for e in deliveries]
    await asyncio.to_thread(lambda: [reconcile_event.send(i) for i in ids])
    return len(deliveries)


async def assert_applied_exactly_once(mix: Mix, timeout: float, procs: list[Proc]) -> None:
    async def done() -> bool:
        return await unfinished(mix) == 0

    try:
        await wait_until(done, timeout=timeout, interval=0.2, message="every event final")
    except AssertionError:
        raise AssertionError("\n".join([await _left(mix)] + [p.log()[-3000:] for p in procs])) from None
    assert await differences(mix) == []
    # One final mark per event: no event was applied twice.
    finals = await AuditEntry.filter(
        event_id__in=[e["id"] for e in mix.events], entity_type="WebhookEvent", to_status__in=["PROCESSED", "IGNORED"]
    ).count()
    assert finals == len(mix.events)
    assert (await verify_chain()).first_broken_id is None


async def _left(mix: Mix) -> str:
    return f"{await unfinished(mix)} events not final; differences: {(await differences(mix))[:10]}"


async def test_two_workers_drain_1000_mixed_deliveries_like_the_oracle(
    db: Settings, broker: dramatiq.Broker, tmp_path: Path, processes: list[Proc]
) -> None:
    rng = random.Random(1000)
    mix = await build_mix(560, rng)  # about 700 unique events, 1,000 deliveries
    settings = db.model_copy(update={"sweep_min_age_s": 120.0})
    processes.append(start_worker(settings, tmp_path, "worker-a"))
    processes.append(start_worker(settings, tmp_path, "worker-b"))
    sent = await send_all(mix, rng)
    assert sent >= 1000 * 0.95
    await assert_applied_exactly_once(mix, timeout=150, procs=processes)


async def test_worker_killed_mid_batch_then_restarted_applies_each_event_once(
    db: Settings, broker: dramatiq.Broker, tmp_path: Path, processes: list[Proc]
) -> None:
    rng = random.Random(9)
    mix = await build_mix(300, rng)
    settings = db.model_copy(update={"sweep_min_age_s": 1.0})
    first = start_worker(settings, tmp_path, "worker-killed")
    processes.append(first)
    await send_all(mix, rng)
    total = len(mix.events)

    async def midway() -> bool:
        return await unfinished(mix) < total * 0.8

    try:
        await wait_until(midway, timeout=90, interval=0.05, message="the worker is mid-batch")
    except AssertionError:
        raise AssertionError(f"{await _left(mix)}\n{first.log()[-3000:]}") from None
    first.kill()
    assert await unfinished(mix) > 0, "the batch finished before the kill: make it larger"
    processes.append(start_worker(settings, tmp_path, "worker-restarted"))
    await assert_applied_exactly_once(mix, timeout=120, procs=processes)
