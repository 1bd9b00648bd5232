"""Storing a verified Stripe event in the inbox: one statement, insert-if-absent."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from typing import Any

from tortoise.connection import get_connection

from models.enums import WebhookEventStatus
from models.tables import WebhookEvent

_COLUMNS = "id, type, status, attempts, failures, received_at, livemode, api_version, created, payload"


@cache
def _insert_sql(dialect: str) -> str:
    marks = ", ".join(f"${i}" if dialect == "postgres" else "?" for i in range(1, 11))
    return (
        f"INSERT INTO webhook_event ({_COLUMNS}) VALUES ({marks}) "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


_received_at = WebhookEvent._meta.fields_map["received_at"]


async def store_event(event: dict[str, Any], raw_body: str) -> bool:
    """Insert the event unless its id is stored already; True when the row is new.

    A single autocommitted statement: when it returns, the row is durable, and the
    unique primary key makes concurrent deliveries of one id store exactly one row."""
    conn = get_connection("default")
    now = datetime.now(timezone.utc)
    created = event.get("created")
    livemode = event.get("livemode")
    api_version = event.get("api_version")
    params = [
        event["id"],
        event["type"],
        WebhookEventStatus.RECEIVED.value,
        0,
        0,
        _received_at.to_db_value(now, WebhookEvent),
        livemode if isinstance(livemode, bool) else False,
        api_version if isinstance(api_version, str) else None,
        created if isinstance(created, int) and not isinstance(created, bool) else None,
        raw_body,
    ]
    rows = await conn.execute_query_dict(_insert_sql(conn.capabilities.dialect), params)
    return bool(rows)
