"""The domain's transaction: state changes, payments and audit entries commit together;
status changes are published, and events enqueued, only after the commit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.models import Model
from tortoise.transactions import in_transaction

from models.audit import AuditDraft, ChainedEntry, append_entries
from models.changes import StatusChange, enqueue, publish

log = logging.getLogger("trackit.ledger")

M = TypeVar("M", bound=Model)


@dataclass(slots=True)
class LedgerTx:
    conn: BaseDBAsyncClient
    drafts: list[AuditDraft] = field(default_factory=list)
    to_enqueue: list[str] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    entries: list[ChainedEntry] = field(default_factory=list)
    # A batch of events in one transaction must never wait for a row lock another batch
    # holds (two batches could wait on each other): lookups skip locked rows instead.
    skip_locked: bool = False
    # Rows locked in this transaction, one instance per row: a record two events of a
    # batch change is one object, so the second sees what the first did.
    rows: dict[tuple[type[Model], Any], Model] = field(default_factory=dict)
    # Records read ahead for a batch, by (model, column, value) (see `prefetched`).
    found: dict[tuple[type[Model], str, Any], Model] = field(default_factory=dict)

    def mark(self) -> tuple[int, int, int]:
        """Where the pending drafts, enqueues and callbacks end now (see `forget_after`)."""
        return len(self.drafts), len(self.to_enqueue), len(self.callbacks)

    def forget_after(self, mark: tuple[int, int, int]) -> None:
        """Drop what was queued for after the commit since `mark` (a step given up)."""
        del self.drafts[mark[0]:], self.to_enqueue[mark[1]:], self.callbacks[mark[2]:]

    def audit(self, draft: AuditDraft) -> None:
        self.drafts.append(draft)

    def enqueue_after_commit(self, event_id: str) -> None:
        """Send `reconcile.event` for `event_id` once this transaction has committed."""
        self.to_enqueue.append(event_id)

    def known(self, instance: M) -> M:
        """The instance this transaction already holds for `instance`'s row, else `instance`."""
        held = self.rows.setdefault((type(instance), instance.pk), instance)
        return held  # type: ignore[return-value]  # keyed by its own type

    def prefetched(self, model: type[M], column: str, value: Any) -> M | None:
        """The row of `model` whose `column` is `value`, if read ahead and locked already."""
        held = self.found.get((model, column, value))
        return held  # type: ignore[return-value]  # stored under its own model

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after the commit (alerts, metrics); dropped on rollback."""
        self.callbacks.append(callback)


@asynccontextmanager
async def ledger_transaction() -> AsyncIterator[LedgerTx]:
    """Run a domain change; on success append its audit entries, commit, then publish."""
    async with in_transaction() as conn:
        tx = LedgerTx(conn)
        yield tx
        # The chain head stays locked until the commit returns: a synchronous commit
        # includes the WAL flush (~4 ms here), which would cap the whole service near
        # 1/fsync. PostgreSQL commits without waiting, and we wait for the flush below,
        # outside the lock, where the flushes of concurrent commits are grouped.
        postgres = conn.capabilities.dialect == "postgres"
        tx.entries = await append_entries(conn, tx.drafts, defer_flush=postgres)
    if tx.entries and postgres:
        await flush_wal()
    _after_commit(tx)


async def flush_wal() -> None:
    """Return once everything committed so far is durable: a tiny transaction that takes
    a transaction id commits synchronously, which flushes the WAL up to its own commit
    record and so every commit before it. Nothing leaves the process (publish, enqueue,
    alert, the broker's ack) before this returns."""
    await get_connection("default").execute_query("SELECT txid_current()")


def _after_commit(tx: LedgerTx) -> None:
    """Hand the committed changes on; a failure here is logged, the commit stands."""
    try:
        _publish(tx.entries)
    except Exception:
        log.exception("publishing committed changes failed")
    try:
        enqueue(tx.to_enqueue)
    except Exception:
        log.exception("enqueueing after commit failed; the sweeper will pick the events up")
    for callback in tx.callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


def _publish(entries: list[ChainedEntry]) -> None:
    publish(
        [
            StatusChange(
                sequence=e.id,
                entity_type=e.entity_type,
                entity_id=e.entity_id,
                from_status=e.from_status,
                to_status=e.to_status,
                at=e.at,
                event_id=e.event_id,
                snapshot=e.after or {},
            )
            for e in entries
            if e.to_status is not None
        ]
    )
