"""Reading Stripe objects defensively: a payload that can never be processed raises
`MalformedPayload` (the event goes DEAD at once), never a TypeError deep in a handler."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


class MalformedPayload(Exception):
    """The payload lacks what this event type needs, or has it with the wrong type."""


class NotYetKnown(Exception):
    """No record matches yet (the app may register it a moment later): wait and retry."""

    def __init__(self, message: str, waiting_for: list[str] | None = None) -> None:
        super().__init__(message)
        self.waiting_for = waiting_for or []


class AmountMismatch(Exception):
    """A settlement whose amount or currency differs from the debt's: never applied."""


def data_object(payload: Any, expected: str) -> dict[str, Any]:
    """`data.object` of an event envelope, checked to be a Stripe `expected` object."""
    if not isinstance(payload, dict):
        raise MalformedPayload("payload is not a JSON object")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise MalformedPayload("payload has no data object")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise MalformedPayload("payload has no data.object")
    kind = obj.get("object")
    if kind != expected:
        raise MalformedPayload(f"data.object is a {kind!r}, expected a {expected!r}")
    return obj


def stripe_id(obj: dict[str, Any], key: str) -> str | None:
    """An id field: a string, an expanded object with an `id`, or null."""
    value = obj.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise MalformedPayload(f"{key} is not a Stripe id: {value!r}"[:200])
    return value


def required_id(obj: dict[str, Any], key: str) -> str:
    value = stripe_id(obj, key)
    if value is None:
        raise MalformedPayload(f"{key} is missing")
    return value


def child(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A nested object, or None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedPayload(f"{key} is not an object")
    return value


def items(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The `data` of a Stripe list field (absent or null: empty)."""
    listing = child(obj, key)
    if listing is None:
        return []
    data = listing.get("data")
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise MalformedPayload(f"{key}.data is not a list of objects")
    return data


def amount(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**53:
        raise MalformedPayload(f"{key} is not an amount in cents: {value!r}"[:200])
    return value


def optional_amount(obj: dict[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else amount(obj, key)


def currency(obj: dict[str, Any], key: str = "currency") -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise MalformedPayload(f"{key} is not a currency code: {value!r}"[:200])
    return value.lower()


def timestamp(obj: dict[str, Any], key: str) -> datetime | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**34:
        raise MalformedPayload(f"{key} is not a unix timestamp: {value!r}"[:200])
    return datetime.fromtimestamp(value, timezone.utc)


def text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise MalformedPayload(f"{key} is not a string: {value!r}"[:200])
    return value
