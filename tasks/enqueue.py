"""Enqueue after commit, without blocking the request on the broker.

The route hands the event id to a sender and answers. In `serve` on Redis the sender
lives on the event loop (`LoopSender`): every id submitted during one loop pass goes out
in one pipelined round trip on redis.asyncio. Elsewhere (the worker's re-enqueues, the
in-process broker) a sender thread batches what piled up meanwhile (`EventSender`).
If the broker is down the send fails, is logged, and the sweeper enqueues the stored
events later: the durable inbox, not the queue, is the source of truth."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from typing import Any
from uuid import uuid4

import dramatiq
from dramatiq.brokers.redis import RedisBroker, _scripts
from redis.exceptions import NoScriptError

from tasks.broker import QUEUE, dispatch_args, enqueue_many
from tasks.runtime import call_on
from tasks.wakeup import WAKE_CAP, WakingRedisBroker, tokens_for, wake_key

log = logging.getLogger("trackit.enqueue")

_STOP = object()
MAX_BATCH = 256


class EventSender:
    """A thread that sends `reconcile.event` messages for the ids it is handed."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="trackit-sender", daemon=True)
        self._thread.start()

    def submit(self, event_id: str) -> None:
        """Send `reconcile.event` for `event_id` soon; never blocks, never raises."""
        self._queue.put(event_id)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is pending, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ids = [item for item in batch if isinstance(item, str)]
            if ids:
                self._send(ids)
            if len(ids) < len(batch):
                return

    def _send(self, ids: list[str]) -> None:
        from tasks.actors import reconcile_event

        try:
            enqueue_many(self._broker, [reconcile_event.message(i) for i in ids])
            if isinstance(self._broker, WakingRedisBroker):
                self._broker.wake(QUEUE, len(ids))
        except Exception as exc:  # broker down: the sweeper re-enqueues stored events
            log.warning(
                "enqueue of %d events failed, the sweeper will retry: %s", len(ids), exc,
                extra={"event_id": ids[0] if len(ids) == 1 else None},
            )


class LoopSender:
    """Sends `reconcile.event` messages from the event loop it is created on.

    A sender thread under load got one or two ids per batch and made each request pay a
    blocking Redis round trip in a second thread contending for the GIL (~30 % of
    serve's CPU). Here ids gather while the loop runs the requests of one pass, then go
    in one pipeline; while it is in flight the next batch gathers."""

    def __init__(self, broker: RedisBroker, redis_url: str) -> None:
        import redis.asyncio as aioredis

        self._broker = broker
        self._loop = asyncio.get_running_loop()
        self._client: Any = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
        self._script = _scripts["dispatch"]
        self._sha = self._client.register_script(self._script).sha
        self._wake_key = wake_key(broker.namespace, QUEUE)
        self._pending: list[str] = []
        self._drainer: asyncio.Task[None] | None = None

    def submit(self, event_id: str) -> None:
        """Send `reconcile.event` for `event_id` soon; never blocks, never raises."""
        call_on(self._loop, self._add, event_id)

    def _add(self, event_id: str) -> None:
        self._pending.append(event_id)
        if self._drainer is None:
            # Starts on the next pass: the ids the current pass submits join this batch.
            self._drainer = self._loop.create_task(self._drain(), name="trackit-sender")

    async def _drain(self) -> None:
        try:
            while self._pending:
                ids, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await self._send(ids)
                except Exception as exc:  # broker down: the sweeper re-enqueues stored events
                    log.warning(
                        "enqueue of %d events failed, the sweeper will retry: %s", len(ids), exc,
                        extra={"event_id": ids[0] if len(ids) == 1 else None},
                    )
        finally:
            self._drainer = None

    async def _send(self, ids: list[str]) -> None:
        from tasks.actors import reconcile_event

        broker = self._broker
        if RedisBroker._max_unpack_size_val is None:
            # dramatiq asks Redis once, with a blocking call: never on the loop.
            await asyncio.to_thread(broker._max_unpack_size)
        messages = []
        for event_id in ids:
            message = reconcile_event.message(event_id).copy(options={"redis_message_id": str(uuid4())})
            broker.emit_before("enqueue", message, None)
            messages.append(message)
        calls = [[broker.namespace, *dispatch_args(broker, message)] for message in messages]
        try:
            await self._pipeline(calls)
        except NoScriptError:
            # A restarted Redis forgot the script: load it once and send again.
            await self._client.script_load(self._script)
            await self._pipeline(calls)
        for message in messages:
            broker.emit_after("enqueue", message, None)

    async def _pipeline(self, calls: list[list[Any]]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for args in calls:
                pipe.evalsha(self._sha, 1, *args)
            # In the same round trip: wake idle consumers now rather than at their next poll.
            pipe.lpush(self._wake_key, *tokens_for(len(calls)))
            pipe.ltrim(self._wake_key, 0, WAKE_CAP - 1)
            await pipe.execute()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is pending (for at most `timeout` seconds), then close the connection."""
        drainer = self._drainer
        if drainer is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(drainer), timeout)
        await self._client.aclose()
