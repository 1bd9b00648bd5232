"""The audit log: append-only, hash-chained, appended at the very end of a transaction.

The chain head row is locked only for the last statements before commit (insert the
entries, move the head), so reconciliations run in parallel and serialise only there.
Ids are handed out under that lock, so they follow commit order: the live feed uses them
as its sequence and a resuming client can never miss a late commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from models.sql import dialect, execute, fetch
from models.tables import AuditEntry, LedgerHead

GENESIS_HASH = "0" * 64


@dataclass(slots=True)
class AuditDraft:
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    event_id: str | None = None
    from_status: str | None = None
    to_status: str | None = None


@dataclass(slots=True)
class ChainedEntry:
    """An audit entry as appended: the row `AuditEntry` reads back, without the ORM
    instance (building one costs more than hashing and inserting it)."""

    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    event_id: str | None
    from_status: str | None
    to_status: str | None
    prev_hash: str
    hash: str


_COLUMNS = (
    "id", "at", "actor", "action", "entity_type", "entity_id", "before", "after", "event_id",
    "from_status", "to_status", "prev_hash", "hash",
)


def canonical_at(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, entry: AuditEntry | ChainedEntry) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    body = orjson.dumps(
        {
            "id": entry.id,
            "at": canonical_at(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "entity_type": entry.entity_type,
            "entity_id": entry.entity_id,
            "before": entry.before,
            "after": entry.after,
            "event_id": entry.event_id,
            "from_status": entry.from_status,
            "to_status": entry.to_status,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def _json(value: dict[str, Any] | None) -> str | None:
    """What the ORM's JSONField stores."""
    return None if value is None else orjson.dumps(value).decode()


def _insert(entries: list[ChainedEntry]) -> tuple[str, list[Any]]:
    """The multi-row INSERT of `entries`, with `?` placeholders, and its parameters."""
    row = "(" + ", ".join("?" for _ in _COLUMNS) + ")"
    names = ", ".join(f'"{c}"' for c in _COLUMNS)
    text = f'INSERT INTO "audit_entry" ({names}) VALUES {", ".join(row for _ in entries)}'
    params: list[Any] = []
    for e in entries:
        params += [
            e.id, e.at, e.actor, e.action, e.entity_type, e.entity_id, _json(e.before), _json(e.after),
            e.event_id, e.from_status, e.to_status, e.prev_hash, e.hash,
        ]
    return text, params


async def append_entries(
    conn: BaseDBAsyncClient, drafts: list[AuditDraft], *, defer_flush: bool = False
) -> list[ChainedEntry]:
    """Chain and insert `drafts` under the head's row lock; call last in the transaction.

    On PostgreSQL the lock is held for two round trips and the commit; `defer_flush`
    makes that commit return before the WAL flush (the caller then waits for it)."""
    if not drafts:
        return []
    name = dialect(conn)
    if name == "postgres":
        sync = ", set_config('synchronous_commit', 'off', true)" if defer_flush else ""
        rows = await fetch(conn, f"SELECT last_id, last_hash{sync} FROM ledger_head WHERE id = 1 FOR UPDATE", [])
    else:
        rows = await fetch(conn, "SELECT last_id, last_hash FROM ledger_head WHERE id = 1", [])
    # Microsecond precision, as both databases store it, so the hash survives a round trip.
    now = datetime.now(timezone.utc)
    prev_hash, next_id = str(rows[0]["last_hash"]), int(rows[0]["last_id"])
    entries = []
    for draft in drafts:
        next_id += 1
        entry = ChainedEntry(
            id=next_id,
            at=now,
            actor=draft.actor,
            action=draft.action,
            entity_type=draft.entity_type,
            entity_id=draft.entity_id,
            before=draft.before,
            after=draft.after,
            event_id=draft.event_id,
            from_status=draft.from_status,
            to_status=draft.to_status,
            prev_hash=prev_hash,
            hash="",
        )
        entry.hash = prev_hash = entry_hash(prev_hash, entry)
        entries.append(entry)
    insert, params = _insert(entries)
    move_head = "UPDATE ledger_head SET last_id = ?, last_hash = ? WHERE id = 1"
    if name == "postgres":
        # One round trip inside the lock: the entries and the new head together.
        await execute(conn, f"WITH appended AS ({insert}) {move_head}", [*params, next_id, prev_hash])
    else:
        await execute(conn, insert, params)
        await execute(conn, move_head, [next_id, prev_hash])
    return entries


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    first_broken_id: int | None
    reason: str | None


async def verify_chain(batch: int = 5000) -> ChainReport:
    """Walk the chain in id order; name the first entry whose link or hash is wrong."""
    prev_hash, checked, last_id = GENESIS_HASH, 0, 0
    while True:
        rows = await AuditEntry.filter(id__gt=last_id).order_by("id").limit(batch)
        if not rows:
            break
        for entry in rows:
            if entry.prev_hash != prev_hash:
                return ChainReport(checked, entry.id, "prev_hash does not match the entry before")
            if entry_hash(prev_hash, entry) != entry.hash:
                return ChainReport(checked, entry.id, "hash does not match the entry's content")
            prev_hash, last_id = entry.hash, entry.id
            checked += 1
    head = await LedgerHead.get(id=1)
    if head.last_id != last_id or head.last_hash != prev_hash:
        return ChainReport(checked, head.last_id, "chain head does not match the last entry")
    return ChainReport(checked, None, None)
