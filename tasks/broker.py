"""Dramatiq broker chosen by configuration: in-process (embedded) or Redis (distributed)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from redis.exceptions import NoScriptError

from api.settings import Settings
from tasks.wakeup import WakingConsumer, WakingRedisBroker

# Actors are declared against this placeholder at import time and moved onto the
# configured broker by `configure_broker`, so importing a module never needs settings.
dramatiq.set_broker(StubBroker())

QUEUE = "reconcile"

log = logging.getLogger("trackit.broker")

PREFETCH_PER_THREAD = 4


class AckBatchingConsumer(WakingConsumer):
    """The waking Redis consumer, with acks sent by the consumer thread in one pipelined
    round trip together with the fetch of the messages that replace them.

    dramatiq acks each message from its worker thread, one blocking Redis call each, and
    with its prefetch full polls for free slots: most of a worker's per-message CPU. Here
    `ack` only notes the message (still strictly after the actor returned, i.e. after
    the commit) and wakes the consumer once a few are pending. An ack lost with the
    process only means a redelivery, which reconciles to a no-op."""

    def __init__(self, broker: AckBatchingRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        # On the broker, so acks noted before a consumer restart are sent by the next one.
        self.pending_acks = broker.pending_acks(queue_name)
        self.acked = threading.Event()
        self.wake_at = max(1, prefetch // 4)

    def ack(self, message: dramatiq.MessageProxy) -> None:
        self.pending_acks.append(message.options["redis_message_id"])
        self.queued_message_ids.discard(message.message_id)
        if len(self.pending_acks) >= self.wake_at:
            self.acked.set()

    def __next__(self) -> dramatiq.MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return dramatiq.MessageProxy(message)
                free = self.prefetch - self.outstanding_message_count
                self.acked.clear()
                messages = self.exchange(max(free, 0))
                if messages:
                    self.message_cache = messages
                    continue
                if free > 0:
                    self._wait_for_wake()  # the queue is empty: until an enqueue wakes us
                else:
                    self.acked.wait(self.idle_timeout_s)  # prefetch full: until acks free slots
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def exchange(self, fetch: int) -> list[bytes | None]:
        """Send the pending acks and, if `fetch`, fetch up to that many messages: one round trip."""
        ids: list[str] = []
        while self.pending_acks:
            ids.append(self.pending_acks.popleft())
        if not ids and not fetch:
            return []
        calls = [command_args(self.broker, "ack", self.queue_name, message_id) for message_id in ids]
        if fetch:
            calls.append(command_args(self.broker, "fetch", self.queue_name, fetch))
        try:
            results = run_dispatch(self.broker, calls)
        except redis.RedisError:
            self.pending_acks.extendleft(reversed(ids))
            raise
        return list(results[-1]) if fetch else []

    def close(self) -> None:
        try:
            self.exchange(0)
        except redis.RedisError as exc:
            log.warning("%d acks not sent on close (%s): redelivered later, as no-ops", len(self.pending_acks), exc)


class AckBatchingRedisBroker(WakingRedisBroker):
    """`WakingRedisBroker` whose main-queue consumers batch their acks (`AckBatchingConsumer`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending_acks: dict[str, deque[str]] = {}

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        if queue_name.endswith((".DQ", ".XQ")):
            return super().consume(queue_name, prefetch, timeout)
        return AckBatchingConsumer(self, queue_name, prefetch, timeout)

    def pending_acks(self, queue_name: str) -> deque[str]:
        return self._pending_acks.setdefault(queue_name, deque())


def run_dispatch(broker: RedisBroker, calls: list[list[Any]]) -> list[Any]:
    """Run dramatiq's `dispatch` script once per argument list, in one pipelined round
    trip; the results in order. By its hash: a pipeline given the script object asks
    Redis first whether it has the script, a second round trip every time."""
    script = broker.scripts["dispatch"]
    for attempt in (1, 2):
        try:
            with broker.client.pipeline(transaction=False) as pipe:
                for args in calls:
                    pipe.evalsha(script.sha, 1, broker.namespace, *args)
                return list(pipe.execute())
        except NoScriptError:
            # Redis restarted and forgot it; nothing ran. Load it and send again.
            if attempt == 2:
                raise
            broker.client.script_load(script.script)
    raise AssertionError("unreachable")


def command_args(broker: RedisBroker, command: str, queue_name: str, *args: Any) -> list[Any]:
    """The arguments of dramatiq's `dispatch` script for `command` (dramatiq 2.2.1, pinned)."""
    return [
        command, current_millis(), queue_name, broker.broker_id, broker.heartbeat_timeout,
        broker.dead_message_ttl, broker._should_do_maintenance(command), broker._max_unpack_size(), *args,
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.distributed:
        return AckBatchingRedisBroker(
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
    if isinstance(broker, AckBatchingRedisBroker):
        # Room for a thread's worth of acks to gather (see AckBatchingConsumer) while the
        # threads still find work queued (dramatiq's default holds twice the threads).
        worker.queue_prefetch = PREFETCH_PER_THREAD * settings.worker_threads
    worker.start()
    return worker


def dispatch_args(broker: RedisBroker, message: dramatiq.Message[Any]) -> list[Any]:
    """The arguments of dramatiq's `dispatch` script for enqueueing `message` (it must
    carry its `redis_message_id`): what `RedisBroker.enqueue` sends."""
    return command_args(broker, "enqueue", message.queue_name, message.options["redis_message_id"], message.encode())


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
