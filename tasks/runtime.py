"""The event loop that runs actor coroutines.

Dramatiq worker threads are plain threads; our database clients belong to one asyncio
loop. `trackit serve` binds uvicorn's loop (embedded mode shares the server's
connections); `trackit worker` starts a dedicated loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None


def bind_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Make `loop` the one on which actors run their coroutines."""
    global _loop
    _loop = loop


def start_loop_thread() -> asyncio.AbstractEventLoop:
    """Start a loop in a daemon thread, bind it, and return it (worker processes).

    uvloop, as `trackit serve` runs: the worker's loop spends its time on asyncpg and
    Redis sockets, where uvloop's transports cost a fraction of asyncio's."""
    import uvloop

    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="trackit-loop", daemon=True)
    thread.start()
    bind_loop(loop)
    return loop


def bound_loop() -> asyncio.AbstractEventLoop:
    """The loop actors run on (RuntimeError when none is bound)."""
    if _loop is None:
        raise RuntimeError("no event loop bound for actors: call bind_loop() at start-up")
    return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` on the bound loop from a worker thread and wait for its result."""
    if _loop is None:
        coro.close()
        raise RuntimeError("no event loop bound for actors: call bind_loop() at start-up")
    return asyncio.run_coroutine_threadsafe(coro, _loop).result(timeout)


def submit(coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
    """Schedule `coro` on the bound loop without waiting for it."""
    if _loop is None:
        coro.close()
        raise RuntimeError("no event loop bound for actors: call bind_loop() at start-up")
    return asyncio.run_coroutine_threadsafe(coro, _loop)


def call_on(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    """Run `callback(*args)` on `loop`: at once when called from it, else scheduled there
    (the thread-safe way in for worker threads and other loops)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback(*args)
    else:
        loop.call_soon_threadsafe(callback, *args)
