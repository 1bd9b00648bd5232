"""Dramatiq broker chosen by configuration: in-process (embedded) or Redis (distributed)."""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis

from api.settings import Settings
from tasks.wakeup import WakingRedisBroker

# Actors are declared against this placeholder at import time and moved onto the
# configured broker by `configure_broker`, so importing a module never needs settings.
dramatiq.set_broker(StubBroker())

QUEUE = "reconcile"

log = logging.getLogger("trackit.broker")


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.distributed:
        return WakingRedisBroker(
            url=settings.redis_url,
            namespace=f"{settings.redis_namespace}:dramatiq",
            # Short heartbeats: a SIGKILLed worker's unacked messages come back sooner.
            heartbeat_timeout=15_000,
            dead_message_ttl=7 * 24 * 3600 * 1000,
        )
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


def configure_broker(settings: Settings) -> dramatiq.Broker:
    """Build the broker for `settings`, make it global and move every actor onto it."""
    import tasks.actors  # noqa: F401  (declares the actors)
    # The actor imports its body lazily; importing it here keeps that cost (~0.2 s:
    # handlers, alerts, Stripe) off the first message a fresh process reconciles.
    import tasks.reconcile  # noqa: F401

    old = dramatiq.get_broker()
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    for name in old.get_declared_actors():
        actor = old.get_actor(name)
        actor.broker = broker
        broker.declare_actor(actor)
    return broker


def start_worker(broker: dramatiq.Broker, settings: Settings) -> dramatiq.Worker:
    """Start consumer and worker threads in this process."""
    worker = dramatiq.Worker(
        broker, worker_threads=settings.worker_threads, worker_timeout=settings.worker_timeout_ms
    )
    worker.start()
    return worker


def dispatch_args(broker: RedisBroker, message: dramatiq.Message[Any]) -> list[Any]:
    """The arguments of dramatiq's `dispatch` script for enqueueing `message` (it must
    carry its `redis_message_id`): what `RedisBroker.enqueue` sends (dramatiq 2.2.1, pinned)."""
    return [
        "enqueue", current_millis(), message.queue_name, broker.broker_id,
        broker.heartbeat_timeout, broker.dead_message_ttl,
        broker._should_do_maintenance("enqueue"), broker._max_unpack_size(),
        message.options["redis_message_id"], message.encode(),
    ]


def enqueue_many(broker: dramatiq.Broker, messages: list[dramatiq.Message[Any]]) -> None:
    """Enqueue `messages`; on Redis in one pipelined round trip instead of one per message.

    Sending is the costliest part of ingest (a blocking Redis call per event). This does
    what `RedisBroker.enqueue` does for each message, but through a pipeline; anything
    unexpected falls back to plain sends."""
    if not isinstance(broker, RedisBroker) or len(messages) < 2:
        for message in messages:
            broker.enqueue(message)
        return
    try:
        dispatch = broker.scripts["dispatch"]
        keys = [broker.namespace]
        sent = []
        with broker.client.pipeline(transaction=False) as pipe:
            for message in messages:
                message = message.copy(options={"redis_message_id": str(uuid4())})
                broker.emit_before("enqueue", message, None)
                dispatch(keys=keys, args=dispatch_args(broker, message), client=pipe)
                sent.append(message)
            pipe.execute()
    except (AttributeError, KeyError, TypeError):
        log.exception("pipelined enqueue unavailable; sending one by one")
        for message in messages:
            broker.enqueue(message)
        return
    for message in sent:
        broker.emit_after("enqueue", message, None)
