"""The sweeper: enqueue stranded RECEIVED events and RETRYING events that are due.

One runs at a time across processes (a PostgreSQL advisory lock held for the sweep;
embedded SQLite mode has a single process). The durable inbox, not the queue, is the
source of truth: whatever the broker lost (it was down, or the in-process one died with
its server), the sweeper finds in the table."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from api.settings import Settings
from models.db import is_postgres
from models.enums import WebhookEventStatus as S
from models.tables import WebhookEvent
from tasks.broker import enqueue_many

log = logging.getLogger("trackit.sweeper")

SWEEPER_LOCK_KEY = 0x7472616B  # "trak"
BATCH = 5000
SEND_BATCH = 500


async def sweep_once(settings: Settings, min_age_s: float | None = None) -> int:
    """Enqueue what is stranded or due; return how many events were enqueued (0 when
    another process holds the sweep). `RECEIVED` events count as stranded once older than
    `min_age_s` (default `settings.sweep_min_age_s`: younger ones are on their way)."""
    from tasks.actors import reconcile_event

    now = datetime.now(timezone.utc)
    min_age = settings.sweep_min_age_s if min_age_s is None else min_age_s
    async with in_transaction() as conn:
        if is_postgres():
            rows = await conn.execute_query_dict(
                "SELECT pg_try_advisory_xact_lock($1) AS got", [SWEEPER_LOCK_KEY]
            )
            if not rows[0]["got"]:
                return 0
        stranded = await (
            WebhookEvent.filter(
                Q(next_attempt_at=None) | Q(next_attempt_at__lte=now),
                status=S.RECEIVED,
                received_at__lte=now - timedelta(seconds=min_age),
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
            broker = reconcile_event.broker
            for start in range(0, len(ids), SEND_BATCH):
                chunk = [reconcile_event.message(i) for i in ids[start : start + SEND_BATCH]]
                await asyncio.to_thread(enqueue_many, broker, chunk)
            # Not again before the next sweep but one: a long backlog is being worked
            # through, and re-sending it every pass would only pile up duplicates.
            not_before = now + timedelta(seconds=max(min_age, settings.sweep_min_age_s, 2 * settings.sweep_interval_s))
            await (
                WebhookEvent.filter(id__in=ids, status__in=(S.RECEIVED, S.RETRYING))
                .using_db(conn)
                .update(next_attempt_at=not_before)
            )
            log.info("sweeper enqueued events", extra={"stranded": len(stranded), "due": len(due)})
        return len(ids)


async def run_sweeper(
    settings: Settings, stop: asyncio.Event, first_min_age_s: float | None = None
) -> None:
    """Sweep at once, then every `sweep_interval_s` until `stop` is set; errors are
    logged, not fatal. `first_min_age_s` overrides the age of the first sweep: an
    embedded server starting up knows its in-process queue is empty, so every
    `RECEIVED` event is stranded."""
    min_age_s = first_min_age_s
    while not stop.is_set():
        try:
            await sweep_once(settings, min_age_s)
            min_age_s = None
        except Exception:
            log.exception("sweep failed; next sweep in %.1f s", settings.sweep_interval_s)
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.sweep_interval_s)
        except asyncio.TimeoutError:
            pass
