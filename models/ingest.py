"""Storing a verified Stripe event in the inbox: insert-if-absent, durable before the 200.

Under load, the deliveries that arrive while an INSERT is in flight are stored together
by the next one: one multi-row `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`, one
commit for all of them (group commit). Each caller still learns only after that commit
whether its own row is new, so "answered 200" keeps meaning "stored"; a lone delivery
waits for nobody. A failing multi-row statement is retried row by row, so one bad row
fails only its own request."""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime, timezone
from functools import cache
from typing import Any

from tortoise.connection import get_connection

from models.enums import WebhookEventStatus
from models.tables import WebhookEvent

_COLUMNS = "id, type, status, attempts, failures, received_at, livemode, api_version, created, payload"
_WIDTH = 10
MAX_BATCH = 32
"""Rows per statement: 320 parameters, far below either database's limit."""
MAX_IN_FLIGHT = 4
"""Statements in flight at once per event loop; the rest gather for the next one. A
redelivery of an event a worker is updating waits for that worker's commit (PostgreSQL's
unique check waits for an uncommitted update of the conflicting row), and with it the
whole statement: more than one or two in flight keeps the others moving meanwhile, and
one of the pool's five connections stays free for everything else."""

Row = list[Any]


@cache
def _insert_sql(dialect: str, rows: int) -> str:
    def marks(row: int) -> str:
        if dialect == "postgres":
            return "(" + ", ".join(f"${row * _WIDTH + i}" for i in range(1, _WIDTH + 1)) + ")"
        return "(" + ", ".join("?" * _WIDTH) + ")"

    values = ", ".join(marks(r) for r in range(rows))
    return f"INSERT INTO webhook_event ({_COLUMNS}) VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id"


_received_at = WebhookEvent._meta.fields_map["received_at"]


def _row(event: dict[str, Any], raw_body: str) -> Row:
    created = event.get("created")
    livemode = event.get("livemode")
    api_version = event.get("api_version")
    return [
        event["id"],
        event["type"],
        WebhookEventStatus.RECEIVED.value,
        0,
        0,
        _received_at.to_db_value(datetime.now(timezone.utc), WebhookEvent),
        livemode if isinstance(livemode, bool) else False,
        # Informational only (the payload keeps it): a value its column cannot hold must
        # not make the event unstorable.
        api_version if isinstance(api_version, str) and len(api_version) <= 64 and "\x00" not in api_version else None,
        created if isinstance(created, int) and not isinstance(created, bool) else None,
        raw_body,
    ]


async def _insert(rows: list[Row]) -> set[str]:
    """Insert `rows` (distinct ids) in one autocommitted statement; the ids that were new."""
    conn = get_connection("default")
    params = [value for row in rows for value in row]
    inserted = await conn.execute_query_dict(_insert_sql(conn.capabilities.dialect, len(rows)), params)
    return {r["id"] for r in inserted}


class InboxWriter:
    """Group commit for one event loop: see the module's docstring."""

    def __init__(self, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.max_batch, self.max_in_flight = max_batch, max_in_flight
        self._pending: list[tuple[Row, asyncio.Future[bool]]] = []
        self._drainers: set[asyncio.Task[None]] = set()

    async def store(self, row: Row) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._pending.append((row, future))
        if len(self._drainers) < self.max_in_flight:
            task = asyncio.create_task(self._drain(), name="trackit-inbox-writer")
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        # A caller that gives up (timeout, disconnect) cancels only its own wait: the
        # statement carrying its row still runs, and a redelivery finds the row stored.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            await self._write(batch)

    async def _write(self, batch: list[tuple[Row, asyncio.Future[bool]]]) -> None:
        # One row per id in a statement: a later delivery of the same id is its duplicate.
        first: dict[str, Row] = {}
        for row, _ in batch:
            first.setdefault(row[0], row)
        try:
            # In id order: two statements in flight that share ids then take the unique
            # index's entries in the same order and cannot deadlock.
            new = await _insert(sorted(first.values(), key=lambda row: str(row[0])))
        except Exception as exc:
            if len(first) == 1:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            for row, future in batch:
                await self._write([(row, future)])
            return
        for row, future in batch:
            if not future.done():
                is_new = row is first[row[0]] and row[0] in new
                future.set_result(is_new)


def _retrieve(future: asyncio.Future[bool]) -> None:
    """Mark a failure seen even when its caller stopped waiting (no "never retrieved" noise)."""
    if not future.cancelled():
        future.exception()


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InboxWriter] = weakref.WeakKeyDictionary()


async def store_event(event: dict[str, Any], raw_body: str) -> bool:
    """Insert the event unless its id is stored already; True when the row is new.

    When it returns, the row is durable (its statement committed), and the unique
    primary key makes concurrent deliveries of one id store exactly one row."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = InboxWriter()
    return await writer.store(_row(event, raw_body))
