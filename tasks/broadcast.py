"""Live push of committed status changes to the GraphQL subscribers of this process.

Embedded mode fans changes out in-process. Distributed mode publishes them on one Redis
pub/sub channel (under `settings.redis_namespace`) that every API process listens to, so
a subscriber on any API process gets the changes committed by any worker.

`publish` is called right after a commit, from the committing coroutine: it never waits
on Redis. Changes go to a queue that one publisher task drains in order.

A slow subscriber never stalls the others: each has a bounded queue
(`settings.subscriber_buffer`) and the fan-out never waits on it. When it is full, its
queue is emptied and replaced by one `LAGGED` mark, and the subscription catches up from
the durable audit log before it goes on live (schema/live.py). Every subscriber gets the
same mark when the Redis listener reconnects, since changes published meanwhile were lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from api.metrics import WS_SUBSCRIBERS
from api.settings import Settings
from models.changes import StatusChange, set_publisher
from tasks.runtime import call_on

log = logging.getLogger("trackit.broadcast")

LAGGED: Final = None
"""Queue mark: changes were dropped for this subscriber; catch up from the audit log."""

Item = StatusChange | None
PUBLISH_ATTEMPTS = 5
LISTEN_READY_TIMEOUT_S = 10.0


class LiveUpdatesUnavailable(RuntimeError):
    """The pub/sub channel cannot be listened to (Redis unreachable)."""


@dataclass(eq=False)
class Subscriber:
    """One subscription's mailbox; `accepts` is a cheap filter run in the fan-out."""

    accepts: Callable[[StatusChange], bool]
    queue: asyncio.Queue[Item]
    lagged: int = field(default=0)

    def offer(self, change: StatusChange) -> None:
        if not self.accepts(change):
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.mark_lagged()

    def mark_lagged(self) -> None:
        """Drop what is queued and ask the consumer to catch up from the audit log."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(LAGGED)
        self.lagged += 1


class Broadcast:
    """Publishes changes after commit; subscribers (schema/live.py) read from it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.channel = f"{settings.redis_namespace}:status-changes"
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: Any = None
        self._outbox: asyncio.Queue[bytes] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        """Install `publish` as the domain's publisher; open Redis when distributed."""
        self._loop = asyncio.get_running_loop()
        if self.settings.distributed:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(
                self.settings.redis_url or "", socket_connect_timeout=5, health_check_interval=30
            )
            self._outbox = asyncio.Queue()
            self._publisher = asyncio.create_task(self._publish_forever(), name="broadcast-publisher")
        set_publisher(self.publish)

    async def close(self) -> None:
        set_publisher(None)
        if self._outbox is not None and self._publisher is not None:
            # Let changes committed just before shutdown go out.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._outbox.join(), timeout=2)
        for task in (self._publisher, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._redis is not None:
            await self._redis.aclose()

    def publish(self, changes: list[StatusChange]) -> None:
        """Hand committed changes on; called synchronously right after a commit."""
        if not changes or self._loop is None:
            return
        call_on(self._loop, self._deliver, changes)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, accepts: Callable[[StatusChange], bool], counted: bool = True
    ) -> AsyncIterator[Subscriber]:
        """Receive, from now on, every published change that `accepts` lets through;
        `counted`: a client's subscription, in the websocket subscribers gauge."""
        if self.settings.distributed:
            await self._ensure_listening()
        subscriber = Subscriber(accepts, asyncio.Queue(maxsize=self.settings.subscriber_buffer))
        self._subscribers.add(subscriber)
        gauge = 1 if counted else 0
        WS_SUBSCRIBERS.inc(gauge)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            WS_SUBSCRIBERS.dec(gauge)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _deliver(self, changes: list[StatusChange]) -> None:
        if self._outbox is not None:
            for change in changes:
                self._outbox.put_nowait(change.to_json())
        else:
            self._fan_out(changes)

    def _fan_out(self, changes: list[StatusChange]) -> None:
        for change in changes:
            for subscriber in list(self._subscribers):
                try:
                    subscriber.offer(change)
                except Exception:  # one bad filter must not starve the others
                    log.exception("subscriber filter failed on change %s", change.sequence)

    async def _publish_forever(self) -> None:
        assert self._outbox is not None
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            await self._publish_batch(batch)
            for _ in batch:
                self._outbox.task_done()

    async def _publish_batch(self, batch: list[bytes]) -> None:
        from redis.exceptions import RedisError

        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
                return
            except (RedisError, OSError) as exc:
                if attempt == PUBLISH_ATTEMPTS:
                    # Durable anyway: the feed fills the gap from the audit log.
                    log.error("dropping %d status changes after %d publish attempts: %s", len(batch), attempt, exc)
                    return
                await asyncio.sleep(0.05 * 2**attempt)

    async def _ensure_listening(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen_forever(), name="broadcast-listener")
        try:
            await asyncio.wait_for(self._listening.wait(), timeout=LISTEN_READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise LiveUpdatesUnavailable("live updates are unavailable: cannot listen on Redis") from None

    async def _listen_forever(self) -> None:
        from redis.exceptions import RedisError

        backoff, connected_before = 0.1, False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        if connected_before:
                            for subscriber in list(self._subscribers):
                                subscriber.mark_lagged()
                        connected_before, backoff = True, 0.1
                        self._listening.set()
                    elif message["type"] == "message":
                        self._fan_out([StatusChange.from_json(message["data"])])
            except (RedisError, OSError) as exc:
                self._listening.clear()
                log.warning("Redis listener lost (%s); reconnecting in %.1fs", exc, backoff)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
