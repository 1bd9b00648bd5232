"""Waking an idle Redis consumer when a message is enqueued, instead of letting it poll.

Dramatiq's Redis consumer polls an empty queue with a growing sleep (5-10 ms at least,
up to `worker_timeout`): at 100 events/s that sleep was the largest part of the time
between the webhook's commit and the start of its reconciliation (6.5 ms median, 22 ms
p99, docs/benchmarks.md). Here an idle consumer blocks on a small Redis list instead
(BLPOP, at most `worker_timeout`), and every enqueue pushes a token on it in the same
round trip as the messages. The tokens carry nothing: a consumer woken for a message
another worker took just finds the queue empty and waits again, and a message sent
without a token (sweeper, redelivery) is fetched within `worker_timeout` as before."""

from __future__ import annotations

import time
from typing import Any

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, q_name
from dramatiq.errors import ConnectionClosed

WAKE_TOKENS = 8
"""Tokens pushed per enqueue at most: more than the idle consumers there are, usually."""
WAKE_CAP = 16
"""The list is trimmed to this: tokens nobody took are only a few early fetches."""
MAX_WAIT_S = 1.0
"""Longest single wait: the fetch is also the worker's heartbeat (redelivery of a silent
worker's messages after `heartbeat_timeout`), and must stay below the socket timeout."""



def wake_key(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{q_name(queue_name)}.wake"


def tokens_for(messages: int) -> list[str]:
    return ["1"] * max(1, min(messages, WAKE_TOKENS))


class WakingConsumer(_RedisConsumer):  # type: ignore[misc]
    """A `_RedisConsumer` that, finding its queue empty, sleeps on the wake list."""

    def __init__(self, broker: "WakingRedisBroker", queue_name: str, prefetch: int, timeout: int) -> None:
        # A zero timeout makes the parent's own poll sleep zero: the waiting is ours.
        super().__init__(broker, queue_name, prefetch, 0)
        self.idle_timeout_s = min(max(timeout, 1) / 1000, MAX_WAIT_S)
        self.wake_key = wake_key(broker.namespace, queue_name)
        self.waits = self.wakes = 0

    def __next__(self) -> Any:
        message = super().__next__()
        if message is None and not self.message_cache:
            if self.outstanding_message_count >= self.prefetch:
                # Full: nothing can be fetched until acks free a slot, and acks are sent
                # between polls: back off as dramatiq does (the worker's own consumer,
                # tasks/broker.py, waits for the acks instead).
                self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=int(self.idle_timeout_s * 1000))
                time.sleep(backoff_ms / 1000)
            else:
                self._wait_for_wake()
        return message

    def _wait_for_wake(self) -> None:
        self.waits += 1
        try:
            token = self.broker.client.blpop([self.wake_key], timeout=self.idle_timeout_s)
        except redis.TimeoutError:
            return  # a slow reply is a missed wake-up, nothing more: fetch again
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None
        if token is not None:
            self.wakes += 1


class WakingRedisBroker(RedisBroker):  # type: ignore[misc]
    """`RedisBroker` whose consumers of the main queues wait on a wake list (not the
    delay queues: a delayed message is due at a time, not at its enqueue)."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        if queue_name.endswith((".DQ", ".XQ")):
            return super().consume(queue_name, prefetch, timeout)
        return WakingConsumer(self, queue_name, prefetch, timeout)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        sent = super().enqueue(message, delay=delay)
        if not delay:
            try:
                self.wake(message.queue_name, 1)
            except redis.RedisError:
                pass  # the consumer's own poll fetches it within worker_timeout
        return sent

    def wake(self, queue_name: str, messages: int) -> None:
        """Wake up to `messages` idle consumers of `queue_name` (blocking call)."""
        key = wake_key(self.namespace, queue_name)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, *tokens_for(messages))
            pipe.ltrim(key, 0, WAKE_CAP - 1)
            pipe.execute()
