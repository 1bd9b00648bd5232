"""Dramatiq broker chosen by configuration: in-process (embedded) or Redis (distributed)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from api.settings import Settings

# Actors are declared against this placeholder at import time and moved onto the
# configured broker by `configure_broker`, so importing a module never needs settings.
dramatiq.set_broker(StubBroker())

QUEUE = "reconcile"


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.distributed:
        return RedisBroker(
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
