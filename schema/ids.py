"""Parsing GraphQL `ID` arguments into record ids."""

from __future__ import annotations

import strawberry

from schema.errors import BadUserInput


def record_id(value: strawberry.ID | str, name: str = "id") -> int:
    """An integer record id from an `ID`; BAD_USER_INPUT when it is not one."""
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise BadUserInput(f"{name} {value!r} is not a record id")
    return int(text)


def optional_record_id(value: strawberry.ID | str | None, name: str) -> int | None:
    return None if value is None else record_id(value, name)
