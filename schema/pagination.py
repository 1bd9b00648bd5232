"""Cursor-paginated connections (`edges { cursor node }`, `pageInfo`), newest first.

Records with integer ids (which grow with time) page by id; the cursor is the opaque
base64 of the sort key of the last edge."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from schema.errors import BadUserInput

T = TypeVar("T")
Row = TypeVar("Row")

DEFAULT_PAGE = 50
MAX_PAGE = 200


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"c:{key}".encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The sort key inside `cursor`; BAD_USER_INPUT when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("c:"):
        raise BadUserInput(f"cursor {cursor!r} is not a cursor this API returned")
    return raw[2:]


def decode_id_cursor(cursor: str | None) -> int | None:
    """The id inside an id cursor, or None for the first page."""
    if cursor is None:
        return None
    key = decode_cursor(cursor)
    if not key.isdigit():
        raise BadUserInput(f"cursor {cursor!r} is not a cursor this API returned")
    return int(key)


def page_size(first: int | None) -> int:
    """`first` checked: 0 to MAX_PAGE, DEFAULT_PAGE when omitted."""
    if first is None:
        return DEFAULT_PAGE
    if not 0 <= first <= MAX_PAGE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE}, not {first}")
    return first


def connection(
    rows: Sequence[Row], size: int, key: Callable[[Row], str], node: Callable[[Row], T]
) -> Connection[T]:
    """A page from `rows`, fetched with `size + 1` rows to learn whether more follow."""
    page = rows[:size]
    edges = [Edge(cursor=encode_cursor(key(row)), node=node(row)) for row in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
        ),
    )
