"""The status changes one subscription receives: live from the broadcast, and from the
durable audit log whenever live delivery cannot be trusted to be complete (a resume, a
subscriber that lagged, a hole in the sequence of the ordered feed).

The seam has no gap and no duplicate: the subscription joins the broadcast FIRST and
buffers, then reads the log, then drains the buffer, skipping what the log gave."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from models.changes import StatusChange
from models.tables import AuditEntry, LedgerHead
from tasks.broadcast import LAGGED, Broadcast

REPLAY_BATCH = 500
# Sequences already delivered, remembered to drop a late duplicate (unordered streams).
SEEN_WINDOW = 4096


def change_from_entry(entry: AuditEntry) -> StatusChange:
    """The status change an audit entry records (its `to_status` is set)."""
    return StatusChange(
        sequence=entry.id,
        entity_type=entry.entity_type,
        entity_id=entry.entity_id,
        from_status=entry.from_status,
        to_status=entry.to_status or "",
        at=entry.at,
        event_id=entry.event_id,
        snapshot=entry.after or {},
    )


async def head_sequence() -> int:
    """The sequence of the last committed audit entry (0 for an empty log)."""
    head = await LedgerHead.get_or_none(id=1)
    return head.last_id if head is not None else 0


async def logged_changes(after: int, entity_type: str | None = None) -> AsyncGenerator[StatusChange, None]:
    """Committed status changes with a sequence above `after`, in sequence order."""
    while True:
        query = AuditEntry.filter(id__gt=after, to_status__isnull=False)
        if entity_type is not None:
            query = query.filter(entity_type=entity_type)
        rows = await query.order_by("id").limit(REPLAY_BATCH)
        for row in rows:
            yield change_from_entry(row)
        if len(rows) < REPLAY_BATCH:
            return
        after = rows[-1].id


async def _admit_all(change: StatusChange) -> bool:
    return True


@dataclass
class ChangeFilter:
    """What one subscription may receive: `accepts` runs in the fan-out (cheap, sync);
    `admits` runs in the subscription's own task (may query, e.g. group membership)."""

    accepts: Callable[[StatusChange], bool]
    admits: Callable[[StatusChange], Awaitable[bool]] = field(default=_admit_all)
    entity_type: str | None = None


class Handoff(Protocol):
    """Something that may deliver an ordered stream for a while (schema/shared_results.py)."""

    def take(self, last: int) -> bool:
        """Deliver from now on every change after `last`, if it can; False: go on alone."""

    async def taken_back(self) -> int:
        """Wait until it stops delivering for us: the last sequence it delivered."""


async def status_changes(
    broadcast: Broadcast, which: ChangeFilter, *, resume_after: int | None = None, ordered: bool = False,
    handoff: Handoff | None = None, counted: bool = True,
) -> AsyncGenerator[StatusChange, None]:
    """Changes `which` lets through, committed after `resume_after` (or from now on).

    `ordered` streams are in strict sequence order with nothing missing: a hole in the
    sequence is filled from the log (it may only be entries that are not status changes).
    Other streams deliver each change once, in the order it was published.

    An ordered stream with a `handoff` lets it deliver whenever it can take over exactly
    where this stream is; meanwhile this stream leaves the broadcast, and it catches up
    from the log when handed back. `counted`: a client's subscription (the gauge of
    websocket subscribers counts it)."""
    assert handoff is None or ordered
    last = resume_after
    catch_up = resume_after is not None
    # Only unordered streams need these: an ordered one drops what is not after `last`.
    start, seen = resume_after or 0, _Seen()
    while True:
        async with broadcast.subscribe(which.accepts, counted) as subscriber:
            if last is None:
                last = start = await head_sequence()
            while True:
                if catch_up:
                    catch_up = False
                    async for change in logged_changes(last, which.entity_type):
                        last = max(last, change.sequence)
                        if not which.accepts(change) or (not ordered and change.sequence in seen):
                            continue
                        if not ordered:
                            seen.add(change.sequence)
                        if await which.admits(change):
                            yield change
                if handoff is not None and handoff.take(last):
                    break
                item = await subscriber.queue.get()
                if item is LAGGED:
                    catch_up = True
                    continue
                if ordered:
                    if item.sequence <= last:
                        continue
                    if item.sequence != last + 1:
                        # Committed, so the log has it and everything before it.
                        catch_up = True
                        continue
                elif item.sequence <= start or item.sequence in seen:
                    continue
                else:
                    seen.add(item.sequence)
                last = max(last, item.sequence)
                if await which.admits(item):
                    yield item
        assert handoff is not None
        # Out of the broadcast while it delivers: nothing piles up here, and its queue
        # is not kept (a few KB per socket, for hours).
        del subscriber
        last, catch_up = await handoff.taken_back(), True


class _Seen:
    """A bounded set of the most recent sequences delivered."""

    def __init__(self) -> None:
        self._order: dict[int, None] = {}

    def __contains__(self, sequence: object) -> bool:
        return sequence in self._order

    def add(self, sequence: int) -> None:
        self._order[sequence] = None
        if len(self._order) > SEEN_WINDOW:
            del self._order[next(iter(self._order))]
