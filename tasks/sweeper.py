"""The sweeper: enqueue stranded RECEIVED events and RETRYING events that are due.

One runs at a time across processes (a PostgreSQL advisory lock held for the sweep;
embedded SQLite mode has a single process)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from tortoise.transactions import in_transaction

from api.settings import Settings
from models.db import is_postgres
from models.enums import WebhookEventStatus as S
from models.tables import WebhookEvent

log = logging.getLogger("trackit.sweeper")

SWEEPER_LOCK_KEY = 0x7472616B  # "trak"
BATCH = 5000


async def sweep_once(settings: Settings) -> int:
    """Enqueue what is stranded or due; return how many events were enqueued."""
    from tasks.actors import reconcile_event

    now = datetime.now(timezone.utc)
    async with in_transaction() as conn:
        if is_postgres():
            rows = await conn.execute_query_dict(
                "SELECT pg_try_advisory_xact_lock($1) AS got", [SWEEPER_LOCK_KEY]
            )
            if not rows[0]["got"]:
                return 0
        stranded = await (
            WebhookEvent.filter(
                status=S.RECEIVED, received_at__lte=now - timedelta(seconds=settings.sweep_min_age_s)
            )
            .using_db(conn)
            .order_by("received_at")
            .limit(BATCH)
            .values_list("id", flat=True)
        )
        due = await (
            WebhookEvent.filter(status=S.RETRYING, next_attempt_at__lte=now)
            .using_db(conn)
            .order_by("next_attempt_at")
            .limit(BATCH)
            .values_list("id", flat=True)
        )
        ids = [str(i) for i in [*stranded, *due]]
        if ids:
            # Sending blocks on the broker; keep the loop free and the lock held meanwhile.
            await asyncio.to_thread(lambda: [reconcile_event.send(i) for i in ids])
            log.info("sweeper enqueued events", extra={"stranded": len(stranded), "due": len(due)})
        return len(ids)


async def run_sweeper(settings: Settings, stop: asyncio.Event) -> None:
    """Sweep every `sweep_interval_s` until `stop` is set; errors are logged, not fatal."""
    while not stop.is_set():
        try:
            await sweep_once(settings)
        except Exception:
            log.exception("sweep failed; next sweep in %.1f s", settings.sweep_interval_s)
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.sweep_interval_s)
        except asyncio.TimeoutError:
            pass
