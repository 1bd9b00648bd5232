"""An idle Redis consumer is woken by an enqueue instead of finding it at its next poll."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import dramatiq
import pytest
import redis

from tasks.broker import QUEUE
from tasks.enqueue import LoopSender
from tasks.wakeup import WAKE_CAP, WakingConsumer, WakingRedisBroker, wake_key
from tests.fixtures.services import REDIS_URL, private_redis_broker, wait_until

IDLE_TIMEOUT_MS = 1_000


@pytest.fixture
def waking_broker() -> Iterator[WakingRedisBroker]:
    with private_redis_broker(WakingRedisBroker, "wake") as broker:
        yield broker


def consumer_of(worker: dramatiq.Worker, queue: str) -> WakingConsumer:
    consumer = worker.consumers[queue].consumer
    assert isinstance(consumer, WakingConsumer)
    return consumer


async def test_an_idle_worker_takes_a_new_message_without_waiting_for_its_poll(
    waking_broker: WakingRedisBroker,
) -> None:
    done = threading.Event()

    @dramatiq.actor(broker=waking_broker, queue_name="probe", actor_name=f"probe_{uuid.uuid4().hex[:6]}")
    def probe() -> None:
        done.set()

    worker = dramatiq.Worker(waking_broker, worker_threads=1, worker_timeout=IDLE_TIMEOUT_MS)
    worker.start()
    try:
        await wait_until(lambda: consumer_of(worker, "probe").waits >= 1, timeout=20, message="the consumer idle")
        probe.send()
        await wait_until(done.is_set, timeout=20, message="the worker ran the message")
        # Woken by the enqueue's token, not by the end of its wait.
        assert consumer_of(worker, "probe").wakes == 1
    finally:
        await asyncio.to_thread(worker.stop, 5_000)


def test_tokens_are_capped_when_no_consumer_takes_them(waking_broker: WakingRedisBroker) -> None:
    for _ in range(10):
        waking_broker.wake("probe", 8)
    assert waking_broker.client.llen(wake_key(waking_broker.namespace, "probe")) == WAKE_CAP


async def test_the_loop_sender_sends_the_message_and_its_wake_token_together(
    waking_broker: WakingRedisBroker,
) -> None:
    import tasks.actors  # noqa: F401  (declares reconcile.event)

    actor = dramatiq.get_broker().get_actor("reconcile.event")
    home = actor.broker
    actor.broker = waking_broker
    waking_broker.declare_actor(actor)
    sender = LoopSender(waking_broker, REDIS_URL)
    try:
        sender.submit("evt_wake_probe")
        key = wake_key(waking_broker.namespace, QUEUE)
        await wait_until(lambda: waking_broker.client.llen(key) >= 1, timeout=10, message="a wake token")
        assert waking_broker.client.hlen(f"{waking_broker.namespace}:{QUEUE}.msgs") == 1
    finally:
        await sender.aclose()
        actor.broker = home
