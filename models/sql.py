"""Hand-written statements for the reconciliation hot path, for both dialects.

The ORM's query builder costs more CPU per statement than PostgreSQL spends running it;
a reconciliation runs about ten statements, so the hot path writes them here once."""

from __future__ import annotations

import re
from functools import cache
from collections.abc import Sequence
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
    rows = await conn.execute_query_dict(for_dialect(text + suffix, name), params)
    if rows:
        return model._init_from_db(**rows[0])
    if suffix.endswith("SKIP LOCKED") and await conn.execute_query_dict(for_dialect(text, name), params):
        raise RowBusy(f"{model.__name__} matching {params} is locked by another transaction")
    return None


def update_statement(
    instance: Model, values: dict[str, Any], expect: dict[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """UPDATE of `instance`'s row with `values` where its id (and `expect`) match, with
    `?` placeholders, and its parameters."""
    meta = instance._meta
    fields = meta.fields_map
    sets = ", ".join(f'"{fields[k].source_field or k}" = ?' for k in values)
    conditions = ['"id" = ?', *(f'"{fields[k].source_field or k}" = ?' for k in expect or {})]
    params = [fields[k].to_db_value(v, instance) for k, v in values.items()]
    params.append(instance.pk)
    params += [fields[k].to_db_value(v, instance) for k, v in (expect or {}).items()]
    return f'UPDATE "{meta.db_table}" SET {sets} WHERE {" AND ".join(conditions)}', params


async def update_row(
    conn: BaseDBAsyncClient, instance: Model, values: dict[str, Any], *, expect: dict[str, Any] | None = None
) -> int:
    """UPDATE `instance`'s row with `values` where its id (and `expect`) match; the
    number of rows changed (1, or 0 when `expect` no longer holds)."""
    text, params = update_statement(instance, values, expect)
    count, _ = await conn.execute_query(for_dialect(text, dialect(conn)), params)
    return int(count)


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
