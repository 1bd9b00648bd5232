"""Hand-written statements for the reconciliation hot path, for both dialects.

The ORM's query builder costs more CPU per statement than PostgreSQL spends running it;
a reconciliation runs about ten statements, so the hot path writes them here once."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from functools import cache
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

M = TypeVar("M", bound=Model)


def dialect(conn: BaseDBAsyncClient) -> str:
    return str(conn.capabilities.dialect)


@cache
def for_dialect(text: str, dialect_name: str) -> str:
    """Our statements use `?`; PostgreSQL wants `$1, $2, ...`."""
    if dialect_name != "postgres":
        return text
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", text)


@cache
def _transaction_type() -> type | None:
    try:
        from tortoise.backends.asyncpg.client import TransactionWrapper
    except ImportError:  # pragma: no cover  (asyncpg is a dependency)
        return None
    return TransactionWrapper


def _asyncpg(conn: BaseDBAsyncClient) -> Any | None:
    """The asyncpg connection under a PostgreSQL transaction, or None."""
    wrapper = _transaction_type()
    return conn._connection if wrapper is not None and isinstance(conn, wrapper) else None


async def fetch(conn: BaseDBAsyncClient, text: str, params: Sequence[Any]) -> Sequence[Mapping[str, Any]]:
    """Run `text` (`?` placeholders) in `conn`'s transaction and return its rows.

    In a PostgreSQL transaction this goes to asyncpg directly: the ORM's wrapper (lock,
    logging, dict copies) costs about as much client CPU as the statement itself."""
    name = dialect(conn)
    raw = _asyncpg(conn) if name == "postgres" else None
    if raw is None:
        return await conn.execute_query_dict(for_dialect(text, name), list(params))
    try:
        rows: Sequence[Mapping[str, Any]] = await raw.fetch(for_dialect(text, name), *params)
        return rows
    except Exception as exc:
        raise _translated(exc) from exc


async def execute(conn: BaseDBAsyncClient, text: str, params: Sequence[Any]) -> int:
    """Run `text` (`?` placeholders) in `conn`'s transaction; the number of rows it changed."""
    name = dialect(conn)
    raw = _asyncpg(conn) if name == "postgres" else None
    if raw is None:
        count, _ = await conn.execute_query(for_dialect(text, name), list(params))
        return int(count)
    try:
        status: str = await raw.execute(for_dialect(text, name), *params)
    except Exception as exc:
        raise _translated(exc) from exc
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _translated(exc: Exception) -> Exception:
    """asyncpg's errors as the ORM raises them, so callers see one set of types."""
    import asyncpg
    from tortoise.exceptions import IntegrityError, OperationalError

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(exc)
    if isinstance(exc, (asyncpg.SyntaxOrAccessError, asyncpg.exceptions.DataError)):
        return OperationalError(exc)
    return exc


class RowBusy(Exception):
    """The row exists but another transaction holds its lock (`skip_locked` lookups)."""


async def select_one(
    conn: BaseDBAsyncClient,
    model: type[M],
    where: str,
    params: list[Any],
    *,
    lock: bool = False,
    skip_locked: bool = False,
) -> M | None:
    """The first row of `model` matching `where`, as an instance; row-locked on
    PostgreSQL when `lock` (SQLite serialises writers instead). With `skip_locked` a row
    another transaction holds raises `RowBusy` instead of waiting for it."""
    name = dialect(conn)
    suffix = ""
    if lock and name == "postgres":
        suffix = " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
    text = f'SELECT * FROM "{model._meta.db_table}" WHERE {where} ORDER BY "id" LIMIT 1'
    rows = await fetch(conn, text + suffix, params)
    if rows:
        return model._init_from_db(**rows[0])
    if suffix.endswith("SKIP LOCKED") and await fetch(conn, text, params):
        raise RowBusy(f"{model.__name__} matching {params} is locked by another transaction")
    return None


@cache
def _update_text(model: type[Model], keys: tuple[str, ...], expect: tuple[str, ...]) -> str:
    fields = model._meta.fields_map
    sets = ", ".join(f'"{fields[k].source_field or k}" = ?' for k in keys)
    conditions = ['"id" = ?', *(f'"{fields[k].source_field or k}" = ?' for k in expect)]
    return f'UPDATE "{model._meta.db_table}" SET {sets} WHERE {" AND ".join(conditions)}'


def db_value(model: Model, name: str, value: Any) -> Any:
    """`value` as the ORM would send it for field `name`; the common types directly (the
    field's own conversion validates too, at several times the cost)."""
    kind = type(value)
    if value is None or kind is str or kind is int or (kind is datetime and value.tzinfo is not None):
        return value
    if isinstance(value, Enum):
        return str(value.value)
    return model._meta.fields_map[name].to_db_value(value, model)


def update_statement(
    instance: Model, values: dict[str, Any], expect: dict[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """UPDATE of `instance`'s row with `values` where its id (and `expect`) match, with
    `?` placeholders, and its parameters."""
    expect = expect or {}
    text = _update_text(type(instance), tuple(values), tuple(expect))
    params = [db_value(instance, k, v) for k, v in values.items()]
    params.append(instance.pk)
    params += [db_value(instance, k, v) for k, v in expect.items()]
    return text, params


async def update_row(
    conn: BaseDBAsyncClient, instance: Model, values: dict[str, Any], *, expect: dict[str, Any] | None = None
) -> int:
    """UPDATE `instance`'s row with `values` where its id (and `expect`) match; the
    number of rows changed (1, or 0 when `expect` no longer holds)."""
    text, params = update_statement(instance, values, expect)
    return await execute(conn, text, params)


def insert_statement(dialect_name: str, instances: Sequence[Model]) -> tuple[str, list[Any]]:
    """A multi-row INSERT of `instances` (all of one model, every column given), with
    `?` placeholders, and its parameters."""
    meta = instances[0]._meta
    columns = [name for name in meta.fields_db_projection if name in meta.fields_map]
    row = "(" + ", ".join("?" for _ in columns) + ")"
    names = ", ".join(f'"{meta.fields_db_projection[c]}"' for c in columns)
    text = f'INSERT INTO "{meta.db_table}" ({names}) VALUES {", ".join(row for _ in instances)}'
    params = [meta.fields_map[c].to_db_value(getattr(obj, c), obj) for obj in instances for c in columns]
    return text, params
