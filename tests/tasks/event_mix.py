"""A realistic mix of registered records and the Stripe events that reconcile them, with
the final state an oracle expects whatever the order and the duplicates. Used by the
multi-process tests and by bench/reconcile.py."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from models import registration
from models.enums import DebtStatus as D
from models.enums import PaymentStatus as PS
from models.enums import ProSubscriptionStatus as P
from models.enums import WebhookEventStatus as S
from models.tables import Debt, Payment, ProSubscription, User, WebhookEvent
from tests.fixtures import stripe_events as se
from tests.fixtures.records import ACTOR, create_debt, create_group, create_user

KINDS = {
    "transfer": 3, "intent": 2, "intent_failed": 1, "both": 1, "reversed": 1,
    "sub_new": 2, "sub_old": 1, "sub_no_payments": 1, "sub_canceled": 1, "ignored": 1,
}
T0 = 1_800_000_000


@dataclass
class Expected:
    status: str
    payments: set[tuple[str, str]]


@dataclass
class Mix:
    events: list[dict[str, Any]] = field(default_factory=list)
    debts: dict[int, Expected] = field(default_factory=dict)
    subs: dict[int, Expected] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)

    def deliveries(self, duplicate_share: float, rng: random.Random) -> list[dict[str, Any]]:
        """Every event once plus redeliveries (`duplicate_share` of the total), shuffled."""
        extra = round(len(self.events) * duplicate_share / (1 - duplicate_share))
        out = self.events + [rng.choice(self.events) for _ in range(extra)]
        rng.shuffle(out)
        return out


async def build_mix(n_scenarios: int, rng: random.Random) -> Mix:
    """Register records for `n_scenarios` scenarios and build their events."""
    mix = Mix()
    members = [await create_user() for _ in range(6)]
    group = await create_group(members)
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=n_scenarios)
    pairs = [rng.sample(members, 2) for _ in kinds]
    amounts = [rng.randint(100, 50_000) for _ in kinds]

    async def scenario(i: int) -> None:
        kind, t = kinds[i], T0 + i * 100
        if kind == "ignored":
            evt = se.event("customer.created", {"id": se.unique_id("cus"), "object": "customer"}, created=t)
            mix.events.append(evt)
            mix.ignored.add(evt["id"])
        elif kind.startswith("sub"):
            await _subscription(mix, kind, t)
        else:
            debtor, creditor = pairs[i]
            debt = await create_debt(group=group, debtor=debtor, creditor=creditor, amount_cents=amounts[i])
            await _debt(mix, kind, debt, t)

    # Registrations in small concurrent batches: the setup, not the subject, of the tests.
    for start in range(0, n_scenarios, 8):
        await asyncio.gather(*(scenario(i) for i in range(start, min(start + 8, n_scenarios))))
    return mix


async def _debt(mix: Mix, kind: str, debt: Debt, t: int) -> None:
    amount = debt.amount_cents
    tr, pi = se.unique_id("tr"), se.unique_id("pi")
    ids = {"transfer": (tr, None), "reversed": (tr, None), "intent": (None, pi),
           "intent_failed": (None, pi), "both": (tr, pi)}[kind]
    await registration.register_settlement(debt.id, transfer_id=ids[0], payment_intent_id=ids[1], actor=ACTOR)
    if kind == "transfer":
        mix.events.append(se.event("transfer.created", se.transfer(id=tr, amount=amount), created=t))
        mix.debts[debt.id] = Expected(D.SETTLED.value, {(tr, PS.SUCCEEDED.value)})
    elif kind == "reversed":
        mix.events.append(se.event("transfer.created", se.transfer(id=tr, amount=amount), created=t))
        mix.events.append(se.event("transfer.reversed", se.transfer(id=tr, amount=amount, reversed_amount=amount), created=t + 10))
        mix.debts[debt.id] = Expected(D.OPEN.value, {(tr, PS.SUCCEEDED.value), (tr, PS.REVERSED.value)})
    elif kind == "intent":
        mix.events.append(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=amount), created=t))
        mix.debts[debt.id] = Expected(D.SETTLED.value, {(pi, PS.SUCCEEDED.value)})
    elif kind == "intent_failed":
        mix.events.append(se.event("payment_intent.payment_failed", se.payment_intent(id=pi, amount=amount, succeeded=False), created=t))
        mix.debts[debt.id] = Expected(D.SETTLEMENT_FAILED.value, {(pi, PS.FAILED.value)})
    else:
        mix.events.append(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=amount), created=t))
        mix.events.append(se.event("transfer.created", se.transfer(id=tr, amount=amount), created=t))
        mix.debts[debt.id] = Expected(D.SETTLED.value, {(pi, PS.SUCCEEDED.value)})


async def _subscription(mix: Mix, kind: str, t: int) -> None:
    user: User = await create_user()
    sub_id, pi = se.unique_id("sub"), se.unique_id("pi")
    sub = await registration.register_pro_subscription(
        user.id, sub_id, "cus_mix", pi if kind == "sub_new" else None, actor=ACTOR
    )
    if kind == "sub_new":
        invoice = se.invoice_new_shape(subscription=sub_id, payment_intent=pi, amount=999)
        mix.events.append(se.event("invoice.paid", invoice, created=t))
        mix.events.append(se.event("payment_intent.succeeded", se.payment_intent(id=pi, amount=999), created=t))
        mix.subs[sub.id] = Expected(P.ACTIVE.value, {(pi, PS.SUCCEEDED.value)})
    elif kind == "sub_old":
        invoice = se.invoice_old_shape(subscription=sub_id, payment_intent=pi, amount=999)
        mix.events.append(se.event("invoice.paid", invoice, created=t, api_version=se.OLD_API))
        mix.subs[sub.id] = Expected(P.ACTIVE.value, {(pi, PS.SUCCEEDED.value)})
    elif kind == "sub_no_payments":
        invoice = se.invoice_new_shape(subscription=sub_id, payment_intent=None, amount=999)
        mix.events.append(se.event("invoice.paid", invoice, created=t))
        mix.subs[sub.id] = Expected(P.ACTIVE.value, {(invoice["id"], PS.SUCCEEDED.value)})
    else:
        mix.events.append(se.event("customer.subscription.deleted", se.subscription(id=sub_id, status="canceled"), created=t))
        mix.subs[sub.id] = Expected(P.CANCELED.value, set())


async def unfinished(mix: Mix) -> int:
    """How many of the mix's events are not yet PROCESSED or IGNORED."""
    done = await WebhookEvent.filter(
        id__in=[e["id"] for e in mix.events], status__in=[S.PROCESSED, S.IGNORED]
    ).count()
    return len(mix.events) - done


async def differences(mix: Mix) -> list[str]:
    """Where the database differs from the oracle (empty: equal)."""
    problems: list[str] = []
    statuses = dict(await WebhookEvent.filter(id__in=[e["id"] for e in mix.events]).values_list("id", "status"))
    for evt in mix.events:
        want = S.IGNORED if evt["id"] in mix.ignored else S.PROCESSED
        if statuses.get(evt["id"]) != want:
            problems.append(f"event {evt['id']} ({evt['type']}) is {statuses.get(evt['id'])}, expected {want.value}")
    for model, expected, key in ((Debt, mix.debts, "debt_id"), (ProSubscription, mix.subs, "pro_subscription_id")):
        rows = dict(await model.filter(id__in=list(expected)).values_list("id", "status"))
        payments: dict[int, list[tuple[str, str]]] = {}
        for record_id, object_id, status in await Payment.filter(**{f"{key}__in": list(expected)}).values_list(key, "stripe_object_id", "status"):
            payments.setdefault(record_id, []).append((object_id, getattr(status, "value", status)))
        for record_id, want_state in expected.items():
            got = getattr(rows.get(record_id), "value", rows.get(record_id))
            if got != want_state.status:
                problems.append(f"{model.__name__} {record_id} is {got}, expected {want_state.status}")
            got_payments = payments.get(record_id, [])
            if sorted(got_payments) != sorted(want_state.payments):
                problems.append(f"{model.__name__} {record_id} payments {got_payments}, expected {want_state.payments}")
    return problems
