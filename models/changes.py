"""What a committed transaction hands to the broadcast: one item per status change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import orjson


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status change after commit. `sequence` is the audit entry id: durable, assigned
    in commit order, never reused. `snapshot` is the record after the change (the audit
    entry's `after`), enough to filter by audience and to answer without a query."""

    sequence: int
    entity_type: str
    entity_id: str
    from_status: str | None
    to_status: str
    at: datetime
    event_id: str | None
    snapshot: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "sequence": self.sequence,
                "entity_type": self.entity_type,
                "entity_id": self.entity_id,
                "from_status": self.from_status,
                "to_status": self.to_status,
                "at": self.at.isoformat(),
                "event_id": self.event_id,
                "snapshot": self.snapshot,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> StatusChange:
        data = orjson.loads(raw)
        data["at"] = datetime.fromisoformat(data["at"])
        return cls(**data)


Publisher = Callable[[list[StatusChange]], None]


def _drop(changes: list[StatusChange]) -> None:
    """Until a broadcast is installed (CLI commands, tests of the domain alone)."""


_publisher: Publisher = _drop


def set_publisher(publisher: Publisher | None) -> None:
    """Install the broadcast that receives changes after each commit (once per process)."""
    global _publisher
    _publisher = publisher or _drop


def publish(changes: list[StatusChange]) -> None:
    if changes:
        _publisher(changes)


Enqueuer = Callable[[str], None]


def _no_enqueue(event_id: str) -> None:
    """Until a broker is installed: the sweeper finds stored events later."""


_enqueuer: Enqueuer = _no_enqueue


def set_enqueuer(enqueuer: Enqueuer | None) -> None:
    """Install what sends `reconcile.event` for an event id after commit (once per process)."""
    global _enqueuer
    _enqueuer = enqueuer or _no_enqueue


def enqueue(event_ids: list[str]) -> None:
    for event_id in event_ids:
        _enqueuer(event_id)
