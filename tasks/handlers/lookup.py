"""Finding the record a Stripe id belongs to, row-locked for the transition.

A batch reads the records of all its events ahead, in one statement per table
(`prefetch_records`, from the ids each handler family names in `handlers.LOOKUPS`);
a lookup takes its record from there, and asks the database only when it is not."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tortoise.models import Model

from models.sql import fetch, select_one
from models.tables import Debt, ProSubscription
from models.unit_of_work import LedgerTx

Record = Debt | ProSubscription


async def _lookup(tx: LedgerTx, model: type[Record], column: str, value: str) -> Any:
    held = tx.prefetched(model, column, value)
    if held is not None:
        return held
    found = await select_one(tx.conn, model, f"{column} = ?", [value], lock=True, skip_locked=tx.skip_locked)
    return tx.known(found) if found is not None else None


async def debt_by_transfer(tx: LedgerTx, transfer_id: str) -> Debt | None:
    found: Debt | None = await _lookup(tx, Debt, "transfer_id", transfer_id)
    return found


async def debt_by_intent(tx: LedgerTx, intent_id: str) -> Debt | None:
    found: Debt | None = await _lookup(tx, Debt, "payment_intent_id", intent_id)
    return found


async def subscription_by_id(tx: LedgerTx, subscription_id: str) -> ProSubscription | None:
    found: ProSubscription | None = await _lookup(tx, ProSubscription, "stripe_subscription_id", subscription_id)
    return found


async def subscription_by_intent(tx: LedgerTx, intent_id: str) -> ProSubscription | None:
    found: ProSubscription | None = await _lookup(tx, ProSubscription, "payment_intent_id", intent_id)
    return found


async def subscription_by_keys(
    tx: LedgerTx, subscription_id: str | None, intent_ids: list[str]
) -> ProSubscription | None:
    """SPEC section 5: by subscription id, else by payment intent id."""
    if subscription_id is not None:
        sub = await subscription_by_id(tx, subscription_id)
        if sub is not None:
            return sub
    for intent_id in intent_ids:
        sub = await subscription_by_intent(tx, intent_id)
        if sub is not None:
            return sub
    return None


async def prefetch_records(tx: LedgerTx, keys: list[tuple[type[Model], str, str]]) -> None:
    """Lock and hold the records matching `keys`, one statement per table (PostgreSQL:
    a batch's transaction). Rows another transaction holds are skipped, not waited for:
    their lookups then ask the database and find them busy (`RowBusy`)."""
    wanted: dict[type[Model], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for model, column, value in keys:
        wanted[model][column].add(value)
    for model, columns in wanted.items():
        names = list(columns)
        where = " OR ".join(f'"{name}" = ANY(?::text[])' for name in names)
        text = f'SELECT * FROM "{model._meta.db_table}" WHERE {where} ORDER BY "id" FOR UPDATE SKIP LOCKED'
        for row in await fetch(tx.conn, text, [sorted(columns[name]) for name in names]):
            record = tx.known(model._init_from_db(**row))
            for name in names:
                value = row[name]
                if value in columns[name]:
                    # The first by id, as a lookup's `ORDER BY id LIMIT 1` would take.
                    tx.found.setdefault((model, name, value), record)
