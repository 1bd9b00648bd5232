"""The domain's transaction: state changes, payments and audit entries commit together,
and the status changes are published only after the commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.audit import AuditDraft, append_entries
from models.changes import StatusChange, publish


@dataclass(slots=True)
class LedgerTx:
    conn: BaseDBAsyncClient
    drafts: list[AuditDraft] = field(default_factory=list)

    def audit(self, draft: AuditDraft) -> None:
        self.drafts.append(draft)


@asynccontextmanager
async def ledger_transaction() -> AsyncIterator[LedgerTx]:
    """Run a domain change; on success append its audit entries, commit, then publish."""
    async with in_transaction() as conn:
        tx = LedgerTx(conn)
        yield tx
        entries = await append_entries(conn, tx.drafts)
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
