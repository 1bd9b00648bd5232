"""Enqueue after commit, without blocking the request on the broker.

The route hands the event id to a sender thread and answers. The thread sends what has
piled up meanwhile in one batch (one Redis round trip). If the broker is down the send
fails, is logged, and the sweeper enqueues the stored events later: the durable inbox,
not the queue, is the source of truth."""

from __future__ import annotations

import logging
import queue
import threading

import dramatiq

from tasks.broker import enqueue_many

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
        except Exception as exc:  # broker down: the sweeper re-enqueues stored events
            log.warning(
                "enqueue of %d events failed, the sweeper will retry: %s", len(ids), exc,
                extra={"event_id": ids[0] if len(ids) == 1 else None},
            )
