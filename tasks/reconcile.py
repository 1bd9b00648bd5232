"""Claim a stored event, dispatch it on its type, and mark it, in one transaction.

Every path ends in a status: PROCESSED or IGNORED (done), RETRYING (record not known
yet, or a handler error: retried with backoff) or DEAD (malformed, amounts disagree,
attempts or match window exhausted: alerted). Nothing raises out of `reconcile`.

A worker process hands the events its threads receive together to `reconcile_batch`
(through `Batcher`): one transaction for several events, same effects, fewer round trips."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import deque
from datetime import datetime, timedelta, timezone

import orjson

from api import metrics
from api.settings import Settings, get_settings
from models.enums import WebhookEventStatus as S
from models.inbox import move_event
from models.db import is_postgres
from models.sql import RowBusy, fetch, select_one
from models.tables import Debt, ProSubscription, WebhookEvent
from models.unit_of_work import LedgerTx, ledger_transaction
from tasks import runtime
from tasks.alerts import dead_event_alert, raise_alert
from tasks.handlers import HANDLERS, LOOKUPS, RecordKey
from tasks.handlers.lookup import prefetch_records
from tasks.handlers.payload import AmountMismatch, MalformedPayload, NotYetKnown

log = logging.getLogger("trackit.reconcile")

CLAIMABLE = (S.RECEIVED, S.RETRYING)
FINAL = (S.PROCESSED, S.IGNORED, S.DEAD)
MAX_ERROR = 2000


async def reconcile(event_id: str, settings: Settings | None = None, *, recheck: bool = True) -> S | None:
    """Apply one event exactly once in effect: the row lock makes concurrent workers wait,
    and the status check makes a repeated message a no-op. Returns the event's new status
    (None when there was nothing to do)."""
    settings = settings or get_settings()
    try:
        status, waiting_for = await _apply(event_id, settings)
    except Exception as exc:
        log.warning("reconciliation failed: %r", exc, extra={"event_id": event_id}, exc_info=True)
        return await _record_failure(event_id, exc, settings)
    if recheck and status is S.RETRYING and waiting_for and await _any_registered(waiting_for):
        # Registered while we looked: its re-enqueue may have run before our commit.
        return await reconcile(event_id, settings, recheck=False)
    return status


async def _apply(event_id: str, settings: Settings) -> tuple[S | None, list[str]]:
    async with ledger_transaction() as tx:
        event = await _claim(tx, event_id)
        if event is None:
            return None, []
        return await _dispatch(tx, event, settings)


async def _dispatch(
    tx: LedgerTx, event: WebhookEvent, settings: Settings, parsed: object = None
) -> tuple[S, list[str]]:
    """Run the event's handler in `tx` and settle the event; its status and what it waits
    for. `parsed`: its payload, when the caller has parsed it already."""
    handler = HANDLERS.get(event.type)
    if handler is None:
        await move_event(tx, event, S.IGNORED, action="ignored")
        _count(tx, event, "ignored")
        return event.status, []
    try:
        payload = _payload(event) if parsed is None else _checked(event, parsed)
        outcome = (await handler(tx, event, payload)).value
    except MalformedPayload as exc:
        outcome = await _dead(tx, settings, event, f"malformed payload: {exc}", "malformed")
    except AmountMismatch as exc:
        outcome = await _dead(tx, settings, event, f"amount mismatch: {exc}", "mismatch")
    except NotYetKnown as exc:
        outcome = await _wait(tx, settings, event, exc)
    _count(tx, event, outcome)
    return event.status, (event.waiting_for or "").split()


async def reconcile_batch(event_ids: list[str], settings: Settings | None = None) -> dict[str, S | None]:
    """Reconcile several events in ONE transaction: one BEGIN, one claim, one append to
    the audit chain, one commit and one WAL flush for all of them, where one event alone
    pays each. Same effects as `reconcile` on each: an event whose record another
    transaction holds is left to `reconcile` afterwards (so two batches never wait on
    each other), and if anything fails, the batch rolls back and each event is
    reconciled on its own, where a failure is recorded against that event only."""
    settings = settings or get_settings()
    ids = list(dict.fromkeys(event_ids))
    results: dict[str, S | None] = {i: None for i in ids}
    if not is_postgres():
        for event_id in ids:
            results[event_id] = await reconcile(event_id, settings)
        return results
    alone: list[str] = []
    waiting: dict[str, list[str]] = {}
    try:
        async with ledger_transaction() as tx:
            tx.skip_locked = True
            events = await _claim_many(tx, ids)
            alone = [i for i in ids if i not in {e.id for e in events}]
            parsed = {event.id: _parsed(event) for event in events}
            await prefetch_records(tx, [key for event in events for key in _record_keys(event, parsed[event.id])])
            for event in events:
                mark = tx.mark()
                try:
                    results[event.id], waiting[event.id] = await _dispatch(tx, event, settings, parsed[event.id])
                except RowBusy:
                    # Nothing written for it yet (lookups come first): retry it alone.
                    tx.forget_after(mark)
                    alone.append(event.id)
    except Exception as exc:
        log.warning("batch of %d rolled back (%r); reconciling one by one", len(ids), exc)
        return {event_id: await reconcile(event_id, settings) for event_id in ids}
    for event_id in alone:
        results[event_id] = await reconcile(event_id, settings)
    for event_id, ids_waited in waiting.items():
        if results[event_id] is S.RETRYING and ids_waited and await _any_registered(ids_waited):
            results[event_id] = await reconcile(event_id, settings, recheck=False)
    return results


async def _claim_many(tx: LedgerTx, event_ids: list[str]) -> list[WebhookEvent]:
    """Lock the claimable events among `event_ids`, skipping those another worker holds."""
    marks = ", ".join("?" for _ in event_ids)
    text = (
        f"SELECT * FROM webhook_event WHERE id IN ({marks}) AND status IN (?, ?)"
        " ORDER BY id FOR UPDATE SKIP LOCKED"
    )
    rows = await fetch(tx.conn, text, [*event_ids, *(s.value for s in CLAIMABLE)])
    return [WebhookEvent._init_from_db(**row) for row in rows]


async def _claim(tx: LedgerTx, event_id: str) -> WebhookEvent | None:
    return await select_one(
        tx.conn, WebhookEvent, "id = ? AND status IN (?, ?)", [event_id, *(s.value for s in CLAIMABLE)], lock=True
    )


def _parsed(event: WebhookEvent) -> object:
    """`event`'s payload parsed, or None when it is not JSON (`_payload` says why)."""
    if event.type not in HANDLERS:
        return None
    try:
        return orjson.loads(event.payload)
    except orjson.JSONDecodeError:
        return None


def _record_keys(event: WebhookEvent, payload: object) -> list[RecordKey]:
    """What `event`'s handler will look up; nothing if its payload does not say (the
    handler then finds out itself, and says why)."""
    keys = LOOKUPS.get(event.type)
    if keys is None or payload is None:
        return []
    try:
        return keys(payload)
    except MalformedPayload:
        return []


def _payload(event: WebhookEvent) -> object:
    try:
        payload = orjson.loads(event.payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"payload is not JSON: {exc}") from None
    return _checked(event, payload)


def _checked(event: WebhookEvent, payload: object) -> object:
    if event.created is None:
        raise MalformedPayload("event has no integer `created`: its order cannot be judged")
    return payload


def backoff_s(settings: Settings, tries: int) -> float:
    """Exponential: retry_base_s, doubled per try, capped at retry_max_s."""
    return float(min(settings.retry_max_s, settings.retry_base_s * 2 ** min(tries, 40)))


async def _wait(tx: LedgerTx, settings: Settings, event: WebhookEvent, reason: NotYetKnown) -> str:
    """RETRYING until the match window closes, then DEAD."""
    now = datetime.now(timezone.utc)
    deadline = event.received_at + timedelta(seconds=settings.match_window_s)
    if now >= deadline:
        return await _dead(
            tx, settings, event, f"{reason} (match window of {settings.match_window_s} s closed)", "unmatched"
        )
    next_at = min(now + timedelta(seconds=backoff_s(settings, event.attempts)), deadline)
    waiting = " ".join(reason.waiting_for)[:1024] or None
    await move_event(
        tx, event, S.RETRYING, action="waiting", last_error=str(reason)[:MAX_ERROR],
        next_attempt_at=next_at, waiting_for=waiting,
    )
    _schedule(tx, event.id, (next_at - now).total_seconds())
    return "waiting"


async def _dead(tx: LedgerTx, settings: Settings, event: WebhookEvent, reason: str, outcome: str) -> str:
    await move_event(tx, event, S.DEAD, action="dead_letter", last_error=reason[:MAX_ERROR])
    alert = dead_event_alert(event.id, event.type, reason)
    tx.after_commit(lambda: raise_alert(settings, alert))
    return outcome


async def _record_failure(event_id: str, exc: Exception, settings: Settings) -> S | None:
    """The effect rolled back; in a new transaction count the failure: RETRYING, or
    DEAD after max_attempts."""
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
    try:
        async with ledger_transaction() as tx:
            event = await _claim(tx, event_id)
            if event is None:
                return None
            if event.failures + 1 >= settings.max_attempts:
                reason = f"failed {event.failures + 1} times; last error: {error}"
                await move_event(
                    tx, event, S.DEAD, action="dead_letter", last_error=reason[:MAX_ERROR], count_failure=True
                )
                alert = dead_event_alert(event.id, event.type, reason)
                tx.after_commit(lambda: raise_alert(settings, alert))
                _count(tx, event, "dead")
            else:
                delay = backoff_s(settings, event.failures)
                await move_event(
                    tx, event, S.RETRYING, action="failed", last_error=error, count_failure=True,
                    next_attempt_at=datetime.now(timezone.utc) + timedelta(seconds=delay),
                )
                _schedule(tx, event.id, delay)
                _count(tx, event, "failed")
            return event.status
    except Exception:
        # The database itself is failing: the event stays as it was and the sweeper
        # picks it up again; the worker goes on with the next message.
        log.exception("could not record the failure of event %s", event_id, extra={"event_id": event_id})
        return None


async def _any_registered(stripe_ids: list[str]) -> bool:
    return bool(
        await Debt.filter(transfer_id__in=stripe_ids).exists()
        or await Debt.filter(payment_intent_id__in=stripe_ids).exists()
        or await ProSubscription.filter(stripe_subscription_id__in=stripe_ids).exists()
        or await ProSubscription.filter(payment_intent_id__in=stripe_ids).exists()
    )


def _schedule(tx: LedgerTx, event_id: str, delay_s: float) -> None:
    """After commit, send the retry with a broker delay (the sweeper is the safety net)."""
    loop = asyncio.get_running_loop()
    delay_ms = max(0, int(delay_s * 1000))

    def send() -> None:
        loop.run_in_executor(None, _send_later, event_id, delay_ms)

    tx.after_commit(send)


def _send_later(event_id: str, delay_ms: int) -> None:
    from tasks.actors import reconcile_event

    try:
        reconcile_event.send_with_options(args=(event_id,), delay=delay_ms)
    except Exception as exc:
        log.warning("could not schedule the retry: %s; the sweeper will", exc, extra={"event_id": event_id})


def _count(tx: LedgerTx, event: WebhookEvent, outcome: str) -> None:
    type_label = event.type if event.type in HANDLERS else "other"
    status, received_at = event.status, event.received_at

    def count() -> None:
        metrics.EVENTS_PROCESSED.labels(type_label, outcome).inc()
        if status is S.DEAD:
            metrics.EVENTS_DEAD.inc()
        if status in FINAL:
            age = (datetime.now(timezone.utc) - received_at).total_seconds()
            metrics.RECEIVE_TO_PROCESSED.observe(max(age, 0.0))

    tx.after_commit(count)


Waiter = asyncio.Future[S | None] | concurrent.futures.Future[S | None]


class Batcher:
    """Coalesces the reconciliations that a process's worker threads ask for at the same
    moment into `reconcile_batch` calls: a lone event goes alone, at once; under load
    each transaction carries several (at most `max_batch`), `max_in_flight` at a time."""

    def __init__(self, max_batch: int = 16, max_in_flight: int = 2) -> None:
        self.max_batch, self.max_in_flight = max_batch, max_in_flight
        self._pending: list[tuple[str, Waiter]] = []
        self._drainers: set[asyncio.Task[None]] = set()
        # Handed over by worker threads; the loop takes them all in one callback.
        self._incoming: deque[tuple[str, concurrent.futures.Future[S | None]]] = deque()
        self._kicked: asyncio.AbstractEventLoop | None = None

    async def reconcile(self, event_id: str) -> S | None:
        """Reconcile `event_id` in the next batch; its new status (None: nothing to do)."""
        future: asyncio.Future[S | None] = asyncio.get_running_loop().create_future()
        self._pending.append((event_id, future))
        self._start_drainers()
        return await future

    def submit(self, event_id: str) -> concurrent.futures.Future[S | None]:
        """From a worker thread: reconcile `event_id` on the bound loop; returns at once.

        Cheaper than running `reconcile` through `runtime.run` (a task, two futures and a
        loop wake-up per message): the messages that arrive while the loop is busy share
        one wake-up."""
        future: concurrent.futures.Future[S | None] = concurrent.futures.Future()
        self._incoming.append((event_id, future))
        loop = runtime.bound_loop()
        # Set before the loop clears it and takes the items: none is left behind.
        if self._kicked is not loop:
            self._kicked = loop
            loop.call_soon_threadsafe(self._take_incoming)
        return future

    def _take_incoming(self) -> None:
        self._kicked = None
        while self._incoming:
            self._pending.append(self._incoming.popleft())
        if self._pending:
            self._start_drainers()

    def _start_drainers(self) -> None:
        if len(self._drainers) < self.max_in_flight:
            task = asyncio.get_running_loop().create_task(self._drain())
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                results = await reconcile_batch([event_id for event_id, _ in batch])
            except Exception as exc:  # reconcile_batch records failures itself; belt and braces
                log.exception("batch failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for event_id, future in batch:
                if not future.done():
                    future.set_result(results.get(event_id))


BATCHER = Batcher()
