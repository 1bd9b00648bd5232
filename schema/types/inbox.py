"""The webhook inbox as operators see it."""

from __future__ import annotations

from datetime import datetime

import orjson
import strawberry
from strawberry.scalars import JSON

from models import tables
from schema.types.enums import WebhookEventStatus


@strawberry.type
class WebhookEvent:
    id: strawberry.ID
    type: str
    status: WebhookEventStatus
    attempts: int
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    livemode: bool
    api_version: str | None
    raw_payload: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: tables.WebhookEvent) -> WebhookEvent:
        return cls(
            id=strawberry.ID(row.id),
            type=row.type,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            received_at=row.received_at,
            processed_at=row.processed_at,
            livemode=row.livemode,
            api_version=row.api_version,
            raw_payload=row.payload,
        )

    @strawberry.field(description="The event exactly as Stripe sent it.")
    def payload(self) -> JSON:
        return orjson.loads(self.raw_payload)


@strawberry.type
class ReconciliationStats:
    received: int
    processing: int
    processed: int
    ignored: int
    retrying: int
    dead: int
    oldest_unprocessed_age_seconds: float | None = strawberry.field(
        description="Age of the oldest event not yet PROCESSED, IGNORED or DEAD; null when none."
    )
