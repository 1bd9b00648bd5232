"""Reading the JSON-simple snapshots that status changes carry."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def parse_at(value: Any) -> datetime | None:
    """A snapshot's ISO datetime (or None) as a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def required_at(value: Any) -> datetime:
    at = parse_at(value)
    if at is None:
        raise ValueError("snapshot is missing a required datetime")
    return at
