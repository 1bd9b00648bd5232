"""Enqueue after commit, without blocking the request on the broker.

The route hands the event id to a sender thread and answers. If the broker is down the
send fails, is logged, and the sweeper enqueues the stored event later: the durable
inbox, not the queue, is the source of truth."""

from __future__ import annotations

import logging
import queue
import threading

import dramatiq

log = logging.getLogger("trackit.enqueue")

_STOP = object()


class EventSender:
    """A thread that sends `reconcile.event` messages for the ids it is handed."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="trackit-sender", daemon=True)
        self._thread.start()

    def submit(self, event_id: str) -> None:
        self._queue.put(event_id)

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        from tasks.actors import reconcile_event

        while True:
            item = self._queue.get()
            if not isinstance(item, str):
                return
            try:
                reconcile_event.send(item)
            except Exception as exc:  # broker down: the sweeper re-enqueues stored events
                log.warning("enqueue failed, the sweeper will retry", extra={"event_id": item, "error": str(exc)})
