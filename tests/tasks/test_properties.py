"""Property-based: mutated payloads never raise out of reconciliation and never mark an
event PROCESSED with a wrong effect; group balances always sum to zero."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.settings import Settings
from models import registration
from models.balances import group_balances
from models.enums import DebtStatus as D
from models.enums import PaymentStatus
from models.enums import ProSubscriptionStatus as P
from models.enums import WebhookEventStatus as S
from models.tables import Debt, Payment, ProSubscription, WebhookEvent
from tasks.reconcile import reconcile
from tests.fixtures import stripe_events as se
from tests.fixtures.records import ACTOR, create_group, create_pending_settlement, create_pro_subscription, create_user
from tests.tasks.inbox import deliver, store

PROPERTY = hsettings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
KINDS = ["transfer.created", "payment_intent.succeeded", "invoice.paid:new", "invoice.paid:old", "invoice_payment.paid"]
INTERESTING = [
    ("data",), ("data", "object"), ("data", "object", "id"), ("data", "object", "object"),
    ("data", "object", "amount"), ("data", "object", "currency"), ("data", "object", "amount_paid"),
    ("data", "object", "subscription"), ("data", "object", "payment_intent"), ("data", "object", "parent"),
    ("data", "object", "parent", "subscription_details"),
    ("data", "object", "parent", "subscription_details", "subscription"),
    ("data", "object", "payments"), ("data", "object", "payments", "data"),
    ("data", "object", "payment"), ("data", "object", "payment", "payment_intent"),
    ("data", "object", "lines"), ("data", "object", "period_end"), ("created",),
]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True),
    st.text(max_size=12), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(""), st.just("usd"), st.just("USD"), st.just(0), st.just(-1),
)


def paths(obj: Any, prefix: tuple[Any, ...] = (), depth: int = 5) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if depth == 0:
        return out
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((*prefix, key))
            out += paths(value, (*prefix, key), depth - 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj[:2]):
            out.append((*prefix, i))
            out += paths(value, (*prefix, i), depth - 1)
    return out


def mutate(evt: dict[str, Any], path: tuple[Any, ...], delete: bool, value: Any) -> bool:
    """Apply the mutation where the path exists; False when it does not."""
    node: Any = evt
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if isinstance(node, dict) and last in node:
        if delete:
            del node[last]
        else:
            node[last] = value
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        if delete:
            node.pop(last)
        else:
            node[last] = value
        return True
    return False


async def base_event(kind: str) -> tuple[dict[str, Any], Debt | None, ProSubscription | None]:
    pi, tr = se.unique_id("pi"), se.unique_id("tr")
    if kind == "transfer.created":
        return se.event(kind, se.transfer(id=tr, amount=1100)), await create_pending_settlement(transfer_id=tr, amount_cents=1100), None
    if kind == "payment_intent.succeeded":
        return se.event(kind, se.payment_intent(id=pi, amount=1100)), await create_pending_settlement(payment_intent_id=pi, amount_cents=1100), None
    if kind == "invoice_payment.paid":
        debt = await create_pending_settlement(payment_intent_id=pi, amount_cents=999)
        return se.event(kind, se.invoice_payment(payment_intent=pi, amount=999)), debt, None
    sub = await create_pro_subscription()
    build = se.invoice_new_shape if kind.endswith("new") else se.invoice_old_shape
    invoice = build(subscription=sub.stripe_subscription_id, payment_intent=pi)
    return se.event("invoice.paid", invoice), None, sub


@PROPERTY
@given(
    kind=st.sampled_from(KINDS),
    pick=st.one_of(st.sampled_from(INTERESTING), st.integers(0, 10_000)),
    delete=st.booleans(),
    value=ODD_VALUES,
)
async def test_mutated_payloads_never_raise_nor_apply_a_wrong_effect(
    db: Settings, kind: str, pick: tuple[str, ...] | int, delete: bool, value: Any
) -> None:
    evt, debt, sub = await base_event(kind)
    mutated = copy.deepcopy(evt)
    # The envelope's id and type are checked at the door (a 400); everything else may be odd.
    candidates = [p for p in paths(mutated) if p[0] not in ("id", "type")]
    path = candidates[pick % len(candidates)] if isinstance(pick, int) else pick
    mutate(mutated, path, delete, value)
    mutated["id"] = evt["id"]
    await store(mutated)
    status = await reconcile(evt["id"], db)  # must not raise
    event = await WebhookEvent.get(id=evt["id"])
    assert status is event.status and event.status in (S.PROCESSED, S.RETRYING, S.DEAD)
    if event.status is not S.PROCESSED:
        assert event.last_error
        assert not await Payment.filter(event_id=event.id).exists()
    if debt is not None:
        after = await Debt.get(id=debt.id)
        assert after.status in (D.PENDING_SETTLEMENT, D.SETTLED)
        if after.status is D.SETTLED:
            assert event.status is S.PROCESSED
            payment = await Payment.get(debt_id=debt.id)
            # Settled only by the money the debt is: never by a mutated amount or currency.
            assert (payment.status, payment.amount_cents, payment.currency) == (
                PaymentStatus.SUCCEEDED, debt.amount_cents, debt.currency)
        else:
            assert not await Payment.filter(debt_id=debt.id).exists()
    if sub is not None:
        after_sub = await ProSubscription.get(id=sub.id)
        assert after_sub.status in (P.PENDING, P.ACTIVE)
        assert (after_sub.status is P.ACTIVE) == (event.status is S.PROCESSED)


OPS = st.lists(
    st.tuples(st.sampled_from(["debt", "settle", "fail", "reverse"]), st.integers(0, 20), st.integers(0, 20),
              st.integers(1, 10_000), st.sampled_from(["usd", "eur"])),
    min_size=1, max_size=12,
)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
async def test_balances_sum_to_zero_after_any_sequence_of_events(db: Settings, ops: list[tuple[str, int, int, int, str]]) -> None:
    members = [await create_user() for _ in range(3)]
    group = await create_group(members)
    debts: list[tuple[Debt, str, str]] = []  # debt, transfer id, payment intent id
    for op, a, b, amount, currency in ops:
        if op == "debt" or not debts:
            debtor, creditor = members[a % 3], members[(a % 3 + 1 + b % 2) % 3]
            debt = await registration.record_debt(group.id, debtor.id, creditor.id, amount, currency, actor=ACTOR)
            tr, pi = se.unique_id("tr"), se.unique_id("pi")
            await registration.register_settlement(debt.id, transfer_id=tr, payment_intent_id=pi, actor=ACTOR)
            debts.append((debt, tr, pi))
            continue
        debt, tr, pi = debts[a % len(debts)]
        if op == "settle":
            evt = se.event("transfer.created", se.transfer(id=tr, amount=debt.amount_cents, currency=debt.currency))
        elif op == "fail":
            evt = se.event("payment_intent.payment_failed", se.payment_intent(id=pi, amount=debt.amount_cents, currency=debt.currency, succeeded=False))
        else:
            evt = se.event("transfer.reversed", se.transfer(id=tr, amount=debt.amount_cents, currency=debt.currency, reversed_amount=debt.amount_cents))
        await deliver(evt, db)
        balances = await group_balances(group.id)
        for cur in {bal.currency for bal in balances}:
            assert sum(bal.net_cents for bal in balances if bal.currency == cur) == 0
    open_debts = await Debt.filter(group_id=group.id).exclude(status=D.SETTLED)
    expected: dict[tuple[int, str], int] = {}
    for d in open_debts:
        expected[(d.creditor_id, d.currency)] = expected.get((d.creditor_id, d.currency), 0) + d.amount_cents
        expected[(d.debtor_id, d.currency)] = expected.get((d.debtor_id, d.currency), 0) - d.amount_cents
    got = {(bal.user_id, bal.currency): bal.net_cents for bal in await group_balances(group.id) if bal.net_cents}
    assert got == {k: v for k, v in expected.items() if v}
