"""The demo scenario of `trackit simulate`: which records to create and which Stripe
events to send, in which order, and what the service must end up with. Pure data: the
CLI does the talking."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from api import stripe_payloads as sp

NAMES = ["Alice", "Bruno", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gustavo", "Hana", "Ines", "Jonas", "Kofi", "Lena"]


@dataclass(frozen=True, slots=True)
class DebtPlan:
    index: int
    debtor: int  # index into the users
    creditor: int
    amount_cents: int
    transfer_id: str | None
    payment_intent_id: str | None
    # The app registers this settlement only after Stripe's event came in.
    registered_late: bool = False
    # Stripe's event carries another amount: it must go DEAD, the debt stays pending.
    mismatched: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    user: int
    subscription_id: str
    customer_id: str
    payment_intent_id: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST to the webhook route; `duplicate` marks a redelivery of an earlier event."""

    event: dict[str, Any]
    note: str
    duplicate: bool = False


@dataclass(slots=True)
class Expected:
    processed: int = 0
    ignored: int = 0
    dead: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    settled: int = 0
    active: int = 0

    @property
    def final_events(self) -> int:
        return self.processed + self.ignored + self.dead


@dataclass(slots=True)
class Scenario:
    users: list[tuple[str, str]]  # (name, email)
    debts: list[DebtPlan]
    subscriptions: list[SubscriptionPlan]
    deliveries: list[Delivery] = field(default_factory=list)
    expected: Expected = field(default_factory=Expected)


def build_scenario(count: int, seed: int | None = None) -> Scenario:
    """`count` debts to settle, about half as many Pro subscriptions, and their events."""
    rng = random.Random(seed)
    tag = sp.new_id("run").removeprefix("run_")
    n_subs = max(2, count // 2)
    n_users = min(len(NAMES), max(4, n_subs))
    n_subs = min(n_subs, n_users)
    users = [(NAMES[i], f"{NAMES[i].lower().replace('é', 'e').replace('-', '')}.{tag}@demo.trackit.test") for i in range(n_users)]
    debts = [
        DebtPlan(
            index=i, debtor=i % n_users, creditor=(i + 1) % n_users, amount_cents=1000 + 250 * i,
            transfer_id=sp.new_id("tr") if i % 2 == 0 else None,
            payment_intent_id=None if i % 2 == 0 else sp.new_id("pi"),
            registered_late=i == 1, mismatched=i == 0,
        )
        for i in range(count)
    ]
    subs = [
        SubscriptionPlan(
            user=j, subscription_id=sp.new_id("sub"), customer_id=sp.new_id("cus"),
            payment_intent_id=sp.new_id("pi") if j % 3 == 2 else None,
        )
        for j in range(n_subs)
    ]
    scenario = Scenario(users=users, debts=debts, subscriptions=subs)
    _add_events(scenario, rng)
    return scenario


def _add_events(scenario: Scenario, rng: random.Random) -> None:
    exp = scenario.expected
    first: list[Delivery] = []  # must reach the service before the registrations
    shuffled: list[Delivery] = []  # independent of each other: Stripe's order is no order
    ordered: list[Delivery] = []  # pairs whose delivery order is the point
    for (name, email), user_index in zip(scenario.users, range(len(scenario.users))):
        cus = sp.customer(email=email)
        shuffled.append(Delivery(sp.event("customer.created", cus), f"customer.created for {name} (ignored)"))
        exp.ignored += 1
    for debt in scenario.debts:
        if debt.transfer_id:
            amount = debt.amount_cents + 100 if debt.mismatched else debt.amount_cents
            evt = sp.event("transfer.created", sp.transfer(id=debt.transfer_id, amount=amount))
            note = f"transfer.created for debt #{debt.index + 1}"
        else:
            assert debt.payment_intent_id
            evt = sp.event("payment_intent.succeeded", sp.payment_intent(id=debt.payment_intent_id, amount=debt.amount_cents))
            note = f"payment_intent.succeeded for debt #{debt.index + 1}"
        if debt.mismatched:
            exp.dead += 1
            shuffled.append(Delivery(evt, note + f" with {amount} cents, not {debt.amount_cents}: goes DEAD"))
            continue
        exp.processed += 1
        exp.settled += 1
        if debt.registered_late:
            exp.out_of_order += 1
            first.append(Delivery(evt, note + " before the app registered it: RETRYING, then applied"))
        else:
            shuffled.append(Delivery(evt, note))
    for j, sub in enumerate(scenario.subscriptions):
        exp.active += 1
        if sub.payment_intent_id:
            obj = sp.invoice_payment(payment_intent=sub.payment_intent_id)
            shuffled.append(Delivery(sp.event("invoice_payment.paid", obj), f"invoice_payment.paid for {scenario.users[sub.user][0]}"))
            exp.processed += 1
        elif j % 2 == 0:
            inv = sp.invoice_new_shape(subscription=sub.subscription_id)
            shuffled.append(Delivery(sp.event("invoice.paid", inv), f"invoice.paid (current API shape) for {scenario.users[sub.user][0]}"))
            exp.processed += 1
        else:
            inv = sp.invoice_old_shape(subscription=sub.subscription_id)
            paid = sp.event("invoice.payment_succeeded", inv, api_version=sp.OLD_API)
            ordered.append(Delivery(paid, f"invoice.payment_succeeded (API {sp.OLD_API} shape) for {scenario.users[sub.user][0]}"))
            exp.processed += 1
            if j == 1:
                # The failed first attempt is delivered after the later success: stale.
                failed_inv = sp.invoice_old_shape(subscription=sub.subscription_id, paid=False)
                failed = sp.event("invoice.payment_failed", failed_inv, api_version=sp.OLD_API, created=paid["created"] - 120)
                ordered.append(Delivery(failed, "an older invoice.payment_failed delivered late: stale, changes nothing"))
                exp.processed += 1
                exp.out_of_order += 1
    rng.shuffle(shuffled)
    deliveries = first + shuffled + ordered
    # Stripe redelivers when it does not hear back in time: every fourth event comes twice.
    redelivered = [Delivery(d.event, "redelivery of " + d.event["id"], duplicate=True) for d in deliveries[::4]]
    exp.duplicates = len(redelivered)
    for k, again in enumerate(redelivered):
        deliveries.insert(min(len(deliveries), (k + 1) * 5), again)
    scenario.deliveries = deliveries
