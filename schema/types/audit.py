"""The audit log and the live feed of status changes."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from models import tables
from models.changes import StatusChange as Change


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: JSON | None
    after: JSON | None
    event_id: str | None
    hash: str

    @classmethod
    def from_model(cls, row: tables.AuditEntry) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            before=None if row.before is None else JSON(row.before),
            after=None if row.after is None else JSON(row.after),
            event_id=row.event_id,
            hash=row.hash,
        )


@strawberry.type(description="A committed status change; `sequence` grows with every change and is never reused.")
class StatusChange:
    sequence: int
    entity_type: str
    entity_id: strawberry.ID
    from_status: str | None
    to_status: str
    at: datetime
    event_id: str | None

    @classmethod
    def from_change(cls, change: Change) -> StatusChange:
        return cls(
            sequence=change.sequence,
            entity_type=change.entity_type,
            entity_id=strawberry.ID(change.entity_id),
            from_status=change.from_status,
            to_status=change.to_status,
            at=change.at,
            event_id=change.event_id,
        )
