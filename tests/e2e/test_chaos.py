"""Chaos on PostgreSQL + Redis: thousands of Stripe deliveries (30 % redelivered, in a
random order) for records registered first, posted to a real `trackit serve` and applied
by two `trackit worker` processes, while workers are SIGKILLed three times and Redis is
killed and restarted once. Afterwards every record, payment and audit entry is compared
with an oracle: nothing lost, nothing applied twice, the audit chain intact."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import Settings
from models import registration
from models.audit import verify_chain
from models.enums import DebtStatus, ProSubscriptionStatus
from models.enums import WebhookEventStatus as S
from models.tables import AuditEntry, Debt, Payment, ProSubscription, WebhookEvent
from tests.conftest import make_settings
from tests.fixtures.processes import Proc, Server, start_server, start_worker
from tests.fixtures.services import Databases, RedisServer, require_services, wait_until
from tests.fixtures.stripe_events import (
    body_of,
    event,
    invoice_new_shape,
    payment_intent,
    sign,
    transfer,
    unique_id,
)

pytestmark = pytest.mark.postgres

# 5,000 deliveries by default; TRACKIT_CHAOS_EVENTS scales it (the mix keeps its shares).
DELIVERIES = int(os.environ.get("TRACKIT_CHAOS_EVENTS", "5000"))
DUPLICATE_SHARE = 0.30
ACTOR = "admin:chaos"
TERMINAL = (S.PROCESSED, S.IGNORED)


@dataclass
class Oracle:
    """What the run must leave behind: each unique event's final status, each record's
    status, and each money movement exactly once."""

    events: dict[str, tuple[dict[str, Any], S]] = field(default_factory=dict)
    records: dict[tuple[str, int], str] = field(default_factory=dict)  # ("Debt", id) -> status
    # (stripe_object_id, status, kind, amount, user id) of each payment.
    payments: Counter[tuple[str, str, str, int, int]] = field(default_factory=Counter)

    def expect(self, *events: dict[str, Any], status: S = S.PROCESSED) -> None:
        for evt in events:
            self.events[evt["id"]] = (evt, status)


async def gather_limited(n: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    gate = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


async def build_oracle(unique: int) -> Oracle:
    """Register the records through the domain functions, then the events for each.

    Most money is announced by several events (Stripe's current and older names for one
    transfer; `invoice.paid` and `invoice.payment_succeeded` for one invoice), racing in
    the two workers: each must settle it once. Shares of the unique events: transfers
    46 % (2 or 3 events a debt), intents succeeded 17 %, intents failed 6 %, invoices
    21 % (2 a subscription), other types 10 % (ignored)."""
    transfers, intents_ok, intents_failed = int(unique * 0.20), int(unique * 0.17), int(unique * 0.06)
    third_name, subscriptions = int(unique * 0.06), int(unique * 0.105)
    ignored = unique - (2 * transfers + third_name + intents_ok + intents_failed + 2 * subscriptions)
    members = await gather_limited(4, [
        partial(registration.create_user, f"chaos-{i}-{unique_id('u')}@example.com", f"Member {i}", actor=ACTOR)
        for i in range(8)
    ])
    group = await registration.create_group("Chaos", [m.id for m in members], actor=ACTOR)
    oracle = Oracle()
    rng = random.Random(7)
    # Every event of one record carries the same `created`: none is stale, whatever the order.
    created = int(time.time())

    async def debt(n: int) -> tuple[int, int, int]:
        debtor, creditor = rng.sample(members, 2)
        amount = 500 + n
        d = await registration.record_debt(group.id, debtor.id, creditor.id, amount, "usd", actor=ACTOR)
        return d.id, debtor.id, amount

    async def by_transfer(n: int) -> None:
        debt_id, debtor, amount = await debt(n)
        tr = transfer(amount=amount)
        await registration.register_settlement(debt_id, transfer_id=tr["id"], actor=ACTOR)
        names = ["transfer.created", "transfer.paid"] + (["transfer.succeeded"] if n < third_name else [])
        oracle.expect(*(event(name, tr, created=created) for name in names))
        oracle.records[("Debt", debt_id)] = DebtStatus.SETTLED.value
        oracle.payments[(tr["id"], "SUCCEEDED", "SETTLEMENT", amount, debtor)] += 1

    async def by_intent(n: int, ok: bool) -> None:
        debt_id, debtor, amount = await debt(n)
        pi = payment_intent(amount=amount, succeeded=ok)
        await registration.register_settlement(debt_id, payment_intent_id=pi["id"], actor=ACTOR)
        oracle.expect(event("payment_intent.succeeded" if ok else "payment_intent.payment_failed", pi, created=created))
        oracle.records[("Debt", debt_id)] = (DebtStatus.SETTLED if ok else DebtStatus.SETTLEMENT_FAILED).value
        oracle.payments[(pi["id"], "SUCCEEDED" if ok else "FAILED", "SETTLEMENT", amount, debtor)] += 1

    async def pro(n: int) -> None:
        user = await registration.create_user(f"pro-{n}-{unique_id('u')}@example.com", f"Pro {n}", actor=ACTOR)
        sub_id = unique_id("sub")
        sub = await registration.register_pro_subscription(user.id, sub_id, "cus_chaos", actor=ACTOR)
        inv = invoice_new_shape(subscription=sub_id, amount=999)
        oracle.expect(*(event(name, inv, created=created) for name in ("invoice.paid", "invoice.payment_succeeded")))
        oracle.records[("ProSubscription", sub.id)] = ProSubscriptionStatus.ACTIVE.value
        oracle.payments[(inv["id"], "SUCCEEDED", "SUBSCRIPTION", 999, user.id)] += 1

    jobs: list[Callable[[], Awaitable[None]]] = [partial(by_transfer, n) for n in range(transfers)]
    jobs += [partial(by_intent, n, True) for n in range(intents_ok)]
    jobs += [partial(by_intent, intents_ok + n, False) for n in range(intents_failed)]
    jobs += [partial(pro, n) for n in range(subscriptions)]
    await gather_limited(6, jobs)
    oracle.expect(
        *(event("customer.created", {"id": unique_id("cus"), "object": "customer"}) for _ in range(ignored)),
        status=S.IGNORED,
    )
    return oracle


def deliveries(oracle: Oracle, total: int) -> list[dict[str, Any]]:
    """Every unique event once, plus redeliveries of random ones up to `total`, shuffled."""
    rng = random.Random(11)
    events = [evt for evt, _ in oracle.events.values()]
    out = events + [rng.choice(events) for _ in range(total - len(events))]
    rng.shuffle(out)
    return out


async def post_all(server: Server, events: list[dict[str, Any]], answers: Counter[str]) -> None:
    """Post every delivery, a few at a time; count how each was answered."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:

        async def post(evt: dict[str, Any]) -> None:
            body = body_of(evt)
            response = await client.post(
                "/webhooks/stripe", content=body,
                headers={"Stripe-Signature": sign(body, server.secret), "Content-Type": "application/json"},
            )
            if response.status_code != 200:
                answers[f"status {response.status_code}"] += 1
            else:
                answers["duplicate" if response.json()["duplicate"] else "new"] += 1

        await gather_limited(8, [partial(post, e) for e in events])


async def terminal_events() -> int:
    return await WebhookEvent.filter(status__in=TERMINAL).count()


@pytest.fixture
async def chaos_settings(databases: Databases, tmp_path: Path) -> AsyncIterator[tuple[Settings, RedisServer]]:
    require_services()
    redis = RedisServer(tmp_path).start()
    url = await databases.postgres_url()
    settings = make_settings(
        url, True, redis_url=redis.url,
        # Slower sweeps than the suite's default: in a backlog of thousands, a sweep every
        # half second re-sends every queued event again and again.
        sweep_interval_s=1.0, sweep_min_age_s=8.0,
    )
    from models.db import close_db, init_db

    await init_db(settings.database_url)
    try:
        yield settings, redis
    finally:
        await close_db()
        redis.kill()


@pytest.mark.timeout(420)
async def test_nothing_lost_nothing_doubled_through_worker_kills_and_a_redis_restart(
    chaos_settings: tuple[Settings, RedisServer], tmp_path: Path, processes: list[Proc]
) -> None:
    settings, redis = chaos_settings
    unique = round(DELIVERIES * (1 - DUPLICATE_SHARE))
    oracle = await build_oracle(unique)
    assert len(oracle.events) == unique
    server = start_server(settings, tmp_path)
    processes.append(server)
    generation = Counter[str]()

    def worker(slot: str) -> Proc:
        generation[slot] += 1
        proc = start_worker(settings, tmp_path, name=f"worker-{slot}-{generation[slot]}")
        processes.append(proc)
        return proc

    workers = {"a": worker("a"), "b": worker("b")}
    answers: Counter[str] = Counter()
    posting = asyncio.create_task(post_all(server, deliveries(oracle, DELIVERIES), answers))

    # Chaos at points of progress (share of unique events applied), never at times.
    chaos: list[tuple[float, str]] = [(0.10, "kill a"), (0.25, "kill b"), (0.40, "restart redis"), (0.55, "kill a")]
    for share, action in chaos:
        await wait_until(
            lambda s=share: _at_least(terminal_events, s * unique), timeout=180, interval=0.25,
            message=f"{share:.0%} applied before '{action}'",
        )
        if action == "restart redis":
            redis.kill()
            redis.start()
        else:
            slot = action.split()[1]
            workers[slot].kill()
            workers[slot] = worker(slot)
    await posting
    await wait_until(
        lambda: _at_least(terminal_events, unique), timeout=240, interval=0.5,
        message=f"all {unique} unique events applied",
    )

    # Every delivery answered 200; exactly the redeliveries were flagged as duplicates.
    assert answers == Counter({"new": unique, "duplicate": DELIVERIES - unique}), answers
    await assert_matches_oracle(oracle)
    assert server.popen is not None and server.popen.poll() is None, "serve survived"
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200


async def _at_least(count: Callable[[], Awaitable[int]], target: float) -> bool:
    return await count() >= target


async def assert_matches_oracle(oracle: Oracle) -> None:
    # Inbox: every unique event stored once, in the status it must end in.
    stored = dict(await WebhookEvent.all().values_list("id", "status"))
    assert len(stored) == len(oracle.events), "stored events != unique deliveries"
    wrong = {i: (stored.get(i), s) for i, (_, s) in oracle.events.items() if stored.get(i) != s}
    assert not wrong, f"{len(wrong)} events not in their final status, e.g. {list(wrong.items())[:5]}"

    # Records: every debt and Pro subscription in the status its events lead to.
    debts = dict(await Debt.all().values_list("id", "status"))
    subs = dict(await ProSubscription.all().values_list("id", "status"))
    actual = {("Debt", i): s.value for i, s in debts.items()} | {("ProSubscription", i): s.value for i, s in subs.items()}
    assert actual == oracle.records, (
        f"records differ: {[(k, actual.get(k), v) for k, v in oracle.records.items() if actual.get(k) != v][:5]}"
    )

    # Payments: exactly the expected money movements, each once.
    payments = Counter(
        (p["stripe_object_id"], p["status"].value, p["kind"].value, p["amount_cents"], p["user_id"])
        for p in await Payment.all().values("stripe_object_id", "status", "kind", "amount_cents", "user_id")
    )
    assert payments == oracle.payments, (
        f"payments differ: lost {list((oracle.payments - payments).items())[:5]}, "
        f"doubled or extra {list((payments - oracle.payments).items())[:5]}"
    )

    # Audit: the chain verifies, and each change is written exactly once.
    report = await verify_chain()
    assert report.first_broken_id is None, f"audit chain broken at {report.first_broken_id}: {report.reason}"
    event_moves = Counter(
        await AuditEntry.filter(entity_type="WebhookEvent", to_status__in=[s.value for s in TERMINAL])
        .values_list("entity_id", "to_status")
    )
    assert event_moves == Counter((i, s.value) for i, (_, s) in oracle.events.items()), (
        f"event audit entries differ: {[(k, n) for k, n in event_moves.items() if n != 1][:5]}"
    )
    # A record moved by events: one entry for its one move, whichever event made it.
    record_moves = Counter(
        (t, int(i), s) for t, i, s in await AuditEntry.filter(
            entity_type__in=["Debt", "ProSubscription"], event_id__not_isnull=True, to_status__not_isnull=True,
        ).values_list("entity_type", "entity_id", "to_status")
    )
    want_moves = Counter((t, i, s) for (t, i), s in oracle.records.items())
    assert record_moves == want_moves, (
        f"record audit entries differ: lost {list((want_moves - record_moves).items())[:5]}, "
        f"doubled {list((record_moves - want_moves).items())[:5]}"
    )
