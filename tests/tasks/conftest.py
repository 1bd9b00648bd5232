"""Fixtures for reconciliation tests that need a broker and a worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from api.settings import Settings
from models.changes import set_enqueuer
from tasks import runtime
from tasks.broker import configure_broker, start_worker
from tasks.enqueue import EventSender


@pytest.fixture
async def broker(db: Settings) -> AsyncIterator[dramatiq.Broker]:
    """The mode's broker (StubBroker, or Redis under the test's namespace) in this
    process, with the enqueuer installed; a placeholder broker again afterwards."""
    broker = configure_broker(db)
    sender = EventSender(broker)
    set_enqueuer(sender.submit)
    yield broker
    set_enqueuer(None)
    sender.close()
    broker.close()
    configure_broker_placeholder()


@pytest.fixture
async def worker(
    db: Settings, broker: dramatiq.Broker, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dramatiq.Worker]:
    """Dramatiq worker threads in this process running actors on the test's loop, with
    the test's settings as the process's settings."""
    monkeypatch.setattr("tasks.reconcile.get_settings", lambda: db)
    runtime.bind_loop(asyncio.get_running_loop())
    started = start_worker(broker, db)
    yield started
    await asyncio.to_thread(started.stop)
    runtime.bind_loop(None)


def configure_broker_placeholder() -> None:
    old = dramatiq.get_broker()
    placeholder = StubBroker()
    dramatiq.set_broker(placeholder)
    for name in old.get_declared_actors():
        actor = old.get_actor(name)
        actor.broker = placeholder
        placeholder.declare_actor(actor)
