"""Reconciliations per second: `trackit worker` processes draining a stored backlog on
PostgreSQL + Redis, and what the audit chain costs.

Part 1 (the headline): a fresh database holds N stored events (transfers, payment
intents, subscription invoices, ignored types) and their records; the benchmark's own
Redis holds one message per event; then 1 (or 2) `trackit worker` processes drain it.
The rate is N over the span between the first and the last `processed_at`, so process
start-up does not count.

Part 2 (the chain's cost), in this process with 4 concurrent reconciliations, same
backlog shape: (a) as shipped (head row locked for the last two statements and a commit
that does not wait for the WAL flush; the flush is awaited after the lock is released),
(b) the naive chain (synchronous commit while the head is locked), (c) no chain at all
(entries inserted without the head lock: what the chain costs in total). It also times
how long the head is held per transaction, uncontended.

Worker CPU per event is counted from the first reconciliation on (start-up excluded),
with the CPU of the PostgreSQL backends serving the workers beside it: on a shared
machine these move far less than the rates do.

    .venv/bin/python -m bench.reconcile --events 20000 --workers 1,2
    # iterating: a short drain, printed only, with a py-spy profile and per-thread CPU
    .venv/bin/python -m bench.reconcile --events 3000 --workers 1 --chain-events 0 --no-save --profile /tmp/w.raw
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import itertools
import json
import os
import signal
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api.settings import Settings
from bench import processes as P
from bench.report import command_line, conditions, save, table, write_section

LOGS = Path("/tmp/trackit-bench-reconcile")


def build_events(n: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """N events of the mix, and how many records of each kind they need."""
    from tests.fixtures import stripe_events as se

    events: list[dict[str, Any]] = []
    kinds = ["transfer"] * 6 + ["intent"] * 2 + ["invoice"] * 2 + ["ignored"]
    counts = {"transfer": 0, "intent": 0, "invoice": 0}
    templates = {
        "transfer": se.event("transfer.created", se.transfer(amount=1100)),
        "intent": se.event("payment_intent.succeeded", se.payment_intent(amount=1100)),
        "invoice": se.event("invoice.paid", se.invoice_new_shape(subscription="sub_x", payment_intent="pi_x")),
        "ignored": se.event("customer.created", {"id": "cus_x", "object": "customer"}),
    }
    run = uuid.uuid4().hex[:8]
    for i, kind in zip(range(n), itertools.cycle(kinds)):
        evt = json.loads(json.dumps(templates[kind]))
        evt["id"] = f"evt_b{run}{i:07d}"
        obj = evt["data"]["object"]
        if kind == "transfer":
            obj["id"] = f"tr_b{run}{counts['transfer']}"
        elif kind == "intent":
            obj["id"] = f"pi_b{run}{counts['intent']}"
        elif kind == "invoice":
            obj["id"] = f"in_b{run}{i}"
            obj["parent"]["subscription_details"]["subscription"] = f"sub_b{run}{counts['invoice']}"
            obj["payments"]["data"][0]["payment"]["payment_intent"] = f"pi_bi{run}{counts['invoice']}"
        if kind in counts:
            counts[kind] += 1
        events.append(evt)
    counts["run"] = run  # type: ignore[assignment]
    return events, counts


async def prepare(database_url: str, n: int) -> list[str]:
    """Records and stored events for a backlog of `n`; returns the event ids."""
    from models.db import close_db, init_db
    from models.enums import DebtStatus, ProSubscriptionStatus
    from models.tables import Debt, Group, GroupMember, ProSubscription, User, WebhookEvent

    await init_db(database_url)
    events, counts = build_events(n)
    run = counts.pop("run")
    users = [await User.create(email=f"b{i}-{run}@bench.io", name=f"b{i}") for i in range(2 + counts["invoice"])]
    group = await Group.create(name="bench")
    await GroupMember.bulk_create([GroupMember(group_id=group.id, user_id=u.id) for u in users[:2]])
    debt = dict(group_id=group.id, debtor_id=users[0].id, creditor_id=users[1].id, amount_cents=1100,
                currency="usd", status=DebtStatus.PENDING_SETTLEMENT)
    await Debt.bulk_create(
        [Debt(**debt, transfer_id=f"tr_b{run}{i}") for i in range(counts["transfer"])]
        + [Debt(**debt, payment_intent_id=f"pi_b{run}{i}") for i in range(counts["intent"])],
        batch_size=2000,
    )
    await ProSubscription.bulk_create(
        [ProSubscription(user_id=users[2 + i].id, status=ProSubscriptionStatus.PENDING,
                         stripe_subscription_id=f"sub_b{run}{i}") for i in range(counts["invoice"])],
        batch_size=2000,
    )
    now = time.time()
    from datetime import datetime, timezone

    at = datetime.fromtimestamp(now, timezone.utc)
    await WebhookEvent.bulk_create(
        [WebhookEvent(id=e["id"], type=e["type"], received_at=at, created=e["created"],
                      api_version=e["api_version"], payload=json.dumps(e, separators=(",", ":"))) for e in events],
        batch_size=1000,
    )
    await close_db()
    return [e["id"] for e in events]


def fill_queue(redis_url: str, namespace: str, ids: list[str]) -> None:
    from api.settings import Settings
    from tasks.actors import reconcile_event
    from tasks.broker import configure_broker

    broker = configure_broker(Settings(redis_url=redis_url, redis_namespace=namespace))
    for event_id in ids:
        reconcile_event.send(event_id)
    broker.close()


def span(database_url: str) -> tuple[int, float]:
    """(final events, seconds between the first and the last processed_at)."""
    rows = P.count_rows(
        database_url,
        "SELECT count(*) FROM webhook_event WHERE status IN ('PROCESSED','IGNORED','DEAD')",
    )
    secs = float(asyncio.run(_scalar(
        database_url, "SELECT extract(epoch FROM max(processed_at) - min(processed_at)) FROM webhook_event"
    )) or 0.0)
    return rows, secs


async def _scalar(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def drain(n: int, workers: int, threads: int, timeout: float, profile: Path | None = None) -> dict[str, Any]:
    """One headline run: `workers` worker processes drain a backlog of `n`; with `profile`,
    py-spy samples the first worker into that file (collapsed stacks) while it drains."""
    with P.fresh_postgres(LOGS) as url, P.own_redis(LOGS) as redis_url:
        namespace = f"trackit-bench-{uuid.uuid4().hex[:8]}"
        ids = asyncio.run(prepare(url, n))
        fill_queue(redis_url, namespace, ids)
        env = P.trackit_env(
            url, redis_url, TRACKIT_REDIS_NAMESPACE=namespace, TRACKIT_WORKER_THREADS=str(threads),
            TRACKIT_SWEEP_MIN_AGE_S="3600", TRACKIT_SWEEP_INTERVAL_S="3600",
        )
        children = [P.start_trackit_worker(env, LOGS, f"worker-{i}") for i in range(workers)]
        started = time.monotonic()
        spy = None
        pg_before: dict[int, float] = {}
        pg_last: dict[int, float] = {}
        pg_polled = 0.0
        threads_before: dict[str, tuple[float, float]] = {}
        # CPU is counted from the first reconciliation on: start-up (imports, pools) is
        # not part of the per-event cost.
        first: tuple[int, float] | None = None
        try:
            while True:
                done, _ = span(url)
                if first is None and done > 0:
                    first = (done, sum(P.cpu_seconds(c.popen.pid) for c in children))
                    pg_before = postgres_cpu(url)
                    pg_last = dict(pg_before)
                    if profile is not None:
                        spy = P.profile(children[0], profile, timeout)
                        threads_before = thread_cpu(children[0].popen.pid)
                elif first is not None and time.monotonic() - pg_polled > 1:
                    # asyncpg replaces a pool connection after 50,000 queries: keep the last
                    # reading of every backend seen, not only of those alive at the end.
                    pg_last.update(postgres_cpu(url))
                    pg_polled = time.monotonic()
                if done >= n:
                    break
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"only {done}/{n} final after {timeout}s; logs in {LOGS}")
                for child in children:
                    if child.popen.poll() is not None:
                        raise SystemExit(f"{child.name} exited:\n{child.log()[-3000:]}")
                time.sleep(0.1)
            cpu = sum(P.cpu_seconds(c.popen.pid) for c in children) - (first[1] if first else 0.0)
            pg_last.update(postgres_cpu(url))
            pg_cpu = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_last.items())
            counted = n - (first[0] if first else 0)
            if spy is not None and profile is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
                after = thread_cpu(children[0].popen.pid)
                per_thread = {
                    tid: [round((u - threads_before.get(tid, (0, 0))[0]) * 1000 / counted, 3),
                          round((s - threads_before.get(tid, (0, 0))[1]) * 1000 / counted, 3)]
                    for tid, (u, s) in after.items()
                }
                profile.with_suffix(".threads.json").write_text(json.dumps(per_thread, indent=1))
        finally:
            for child in children:
                child.stop()
        done, secs = span(url)
        dead = P.count_rows(url, "SELECT count(*) FROM webhook_event WHERE status = 'DEAD'")
        return {"workers": workers, "threads": threads, "events": n, "seconds": round(secs, 2),
                "per_s": round(n / secs, 1), "dead": dead,
                "worker_cpu_ms_per_event": round(cpu * 1000 / max(counted, 1), 2),
                "postgres_cpu_ms_per_event": round(pg_cpu * 1000 / max(counted, 1), 2)}


def postgres_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the benchmark's database (the
    workers' connections; the server's shared WAL writer and checkpointer not included,
    and up to a second of a backend that exits during the drain missed)."""
    pids = asyncio.run(_backend_pids(database_url))
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = P.cpu_seconds(pid)
        except OSError:
            continue
    return found


async def _backend_pids(url: str) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(r["pid"]) for r in rows]
    finally:
        await conn.close()


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of each thread of `pid`, by native thread id (as py-spy
    names them): which thread the worker's time goes to."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[task.name] = (int(fields[11]) / ticks, int(fields[12]) / ticks)
    return found


# --- part 2: the chain's cost, in process ------------------------------------------------

_started: contextvars.ContextVar[float] = contextvars.ContextVar("append_started", default=0.0)


def chain_variant(variant: str, n: int, concurrency: int) -> dict[str, Any]:
    """Reconcile a backlog of `n` in this process under one chain variant."""
    with P.fresh_postgres(LOGS) as url:
        ids = asyncio.run(prepare(url, n))
        return asyncio.run(_run_variant(variant, url, ids, concurrency))


async def _run_variant(variant: str, url: str, ids: list[str], concurrency: int) -> dict[str, Any]:
    n = len(ids)
    import models.unit_of_work as uow
    from api.settings import Settings
    from models.audit import append_entries
    from models.db import close_db, init_db
    from models.sql import dialect, for_dialect, insert_statement
    from models.tables import AuditEntry
    from tasks.reconcile import reconcile

    held: list[float] = []
    real_flush = uow.flush_wal
    ids_counter = itertools.count(10_000_000)

    async def timed_append(conn: Any, drafts: Any, *, defer_flush: bool = False) -> Any:
        _started.set(time.perf_counter())
        if variant == "no_chain":
            entries = [AuditEntry(id=next(ids_counter), at=uow_now(), prev_hash="", hash="", **_draft(d)) for d in drafts]
            text, params = insert_statement(dialect(conn), entries)
            # The same commit as shipped (flush awaited after it): only the chain differs.
            await conn.execute_query("SELECT set_config('synchronous_commit', 'off', true)")
            await conn.execute_query(for_dialect(text, dialect(conn)), params)
            return entries
        return await append_entries(conn, drafts, defer_flush=(variant == "shipped"))

    async def timed_flush() -> None:
        held.append(time.perf_counter() - _started.get())
        if variant != "sync_commit_under_lock":
            await real_flush()

    patches: list[tuple[Any, str, Callable[..., Awaitable[Any]]]] = [
        (uow, "append_entries", timed_append), (uow, "flush_wal", timed_flush),
    ]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    await init_db(url)
    settings = Settings(database_url=url)
    for obj, name, fn in patches:
        setattr(obj, name, fn)
    try:
        queue = list(reversed(ids))

        async def work() -> None:
            while queue:
                await reconcile(queue.pop(), settings)

        start = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    finally:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
        await close_db()
    return {"variant": variant, "concurrency": concurrency, "events": n, "per_s": round(n / seconds, 1),
            "head_held_ms_median": round(statistics.median(held) * 1000, 2) if held else None}


def uow_now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def _draft(d: Any) -> dict[str, Any]:
    fields = ("actor", "action", "entity_type", "entity_id", "before", "after", "event_id", "from_status", "to_status")
    return {f: getattr(d, f) for f in fields}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    parser.add_argument("--threads", type=int, default=Settings.model_fields["worker_threads"].default,
                        help="TRACKIT_WORKER_THREADS of each worker (default: the service's)")
    parser.add_argument("--chain-events", type=int, default=3000,
                        help="backlog of the in-process chain variants (0: skip them)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the first worker while it drains (collapsed stacks to this file)")
    parser.add_argument("--no-save", action="store_true",
                        help="print only: leave docs/benchmarks.md and bench/results alone (iterating)")
    args = parser.parse_args()
    when = conditions()
    headline = [drain(args.events, int(k), args.threads, args.timeout, args.profile) for k in args.workers.split(",")]
    chain = [
        chain_variant(v, args.chain_events, c)
        for v in ("shipped", "sync_commit_under_lock", "no_chain") for c in (1, 4)
    ] if args.chain_events > 0 else []
    if args.no_save:
        print(json.dumps({"conditions": when, "drain": headline, "chain": chain}, indent=2))
        return
    save("reconcile", {"conditions": when, "command": command_line(), "drain": headline, "chain": chain})
    markdown = "\n\n".join([
        "## Reconciliation throughput (PostgreSQL + Redis)",
        f"`{command_line()}` — {when}",
        table(["worker processes", "threads each", "events", "drain span (s)", "reconciliations/s", "DEAD",
               "worker CPU ms/event", "PostgreSQL backends CPU ms/event"],
              [[r["workers"], r["threads"], r["events"], r["seconds"], r["per_s"], r["dead"], r["worker_cpu_ms_per_event"],
                r["postgres_cpu_ms_per_event"]] for r in headline]),
        "The audit chain's cost (in one process, concurrent reconciliations, same backlog shape):",
        table(["chain variant", "concurrency", "events", "reconciliations/s", "chain append start -> commit returned, median (ms)"],
              [[r["variant"], r["concurrency"], r["events"], r["per_s"], r["head_held_ms_median"]] for r in chain]),
    ])
    write_section("reconcile", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
