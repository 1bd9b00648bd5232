"""The worker's Redis consumer acks in batches, with its fetches: every message ends
acked (none redelivered), while the actor ran, and before the worker's consumer closes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import dramatiq
import pytest

from tasks.broker import AckBatchingConsumer, AckBatchingRedisBroker
from tests.fixtures.services import private_redis_broker, wait_until

QUEUE = "ackprobe"


@pytest.fixture
def ack_broker() -> Iterator[AckBatchingRedisBroker]:
    with private_redis_broker(AckBatchingRedisBroker, "acks") as broker:
        yield broker


def unacked(broker: AckBatchingRedisBroker) -> int:
    """Messages still stored (not acked) plus ack-set entries, for this namespace."""
    stored = int(broker.client.hlen(f"{broker.namespace}:{QUEUE}.msgs"))
    acks = sum(int(broker.client.scard(k)) for k in broker.client.scan_iter(match=f"{broker.namespace}:__acks__.*"))
    return stored + acks


async def test_every_message_is_run_once_and_acked(ack_broker: AckBatchingRedisBroker) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    @dramatiq.actor(broker=ack_broker, queue_name=QUEUE, actor_name=f"ack_{uuid.uuid4().hex[:6]}")
    def probe(n: int) -> None:
        with lock:
            seen.append(n)

    for n in range(200):
        probe.send(n)
    worker = dramatiq.Worker(ack_broker, worker_threads=4, worker_timeout=100)
    worker.queue_prefetch = 16
    worker.start()
    try:
        consumer = worker.consumers[QUEUE].consumer
        assert isinstance(consumer, AckBatchingConsumer)
        await wait_until(lambda: len(seen) == 200, timeout=30, message="every message ran")
        # The last acks go out with the consumer's next exchange (at most its idle timeout).
        await wait_until(lambda: unacked(ack_broker) == 0, timeout=10, message="every message acked")
    finally:
        await asyncio.to_thread(worker.stop, 5_000)
    assert sorted(seen) == list(range(200))


async def test_acks_noted_before_the_consumer_closes_are_sent(ack_broker: AckBatchingRedisBroker) -> None:
    ack_broker.declare_queue(QUEUE)

    @dramatiq.actor(broker=ack_broker, queue_name=QUEUE, actor_name=f"ack_{uuid.uuid4().hex[:6]}")
    def probe() -> None:
        """Never run: the test drives the consumer by hand."""

    for _ in range(3):
        probe.send()
    consumer = ack_broker.consume(QUEUE, prefetch=8, timeout=100)
    assert isinstance(consumer, AckBatchingConsumer)
    messages = [next(consumer) for _ in range(3)]
    assert all(m is not None for m in messages)
    for message in messages:
        consumer.ack(message)
    # Noted, not sent yet: fewer than `wake_at`.
    assert ack_broker.client.hlen(f"{ack_broker.namespace}:{QUEUE}.msgs") == 3
    consumer.close()
    assert unacked(ack_broker) == 0
