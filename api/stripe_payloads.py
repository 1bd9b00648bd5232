"""Stripe event payloads in Stripe's own field layout, for `trackit simulate` and the
stuck-record check. The example objects come from Stripe's published API fixtures
(`stripe_examples.json`, MIT); ids and amounts are set per call."""

from __future__ import annotations

import copy
import itertools
import json
import secrets
import time
from functools import cache
from pathlib import Path
from typing import Any

import stripe

EXAMPLES = Path(__file__).with_name("stripe_examples.json")
CURRENT_API = "2026-10-28.endive"
# Before 2025-03-31 an invoice carried `subscription` and `payment_intent` at its top level.
OLD_API = "2024-06-20"

_serial = itertools.count(1)
_run = secrets.token_hex(3)


@cache
def _examples() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLES.read_text())
    return data


def resource(name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of Stripe's example `name` object with `overrides` applied."""
    obj: dict[str, Any] = copy.deepcopy(_examples()[name])
    obj.update(overrides)
    return obj


def new_id(prefix: str) -> str:
    """An id in Stripe's style, unique across runs (`evt_sim…`, `tr_sim…`)."""
    return f"{prefix}_sim{_run}{int(time.time())}{next(_serial):04d}"


def event(
    type: str, obj: dict[str, Any], *, id: str | None = None, created: int | None = None,
    api_version: str = CURRENT_API, pending_webhooks: int = 1,
) -> dict[str, Any]:
    """Wrap `obj` as a Stripe event envelope."""
    return {
        "id": id or new_id("evt"),
        "object": "event",
        "type": type,
        "api_version": api_version,
        "created": created if created is not None else int(time.time()),
        "livemode": bool(obj.get("livemode", False)),
        "pending_webhooks": pending_webhooks,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def invoice_new_shape(
    *, subscription: str | None, payment_intent: str | None = None, amount: int = 999,
    currency: str = "usd", paid: bool = True,
) -> dict[str, Any]:
    """An invoice as API 2025-03-31 and later send it (`parent.subscription_details`)."""
    now = int(time.time())
    inv = resource(
        "invoice", id=new_id("in"), currency=currency, amount_due=amount, livemode=False,
        amount_paid=amount if paid else 0, amount_remaining=0 if paid else amount,
        status="paid" if paid else "open", period_start=now, period_end=now + 30 * 86400,
    )
    inv["parent"] = {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"metadata": {}, "subscription": subscription},
    } if subscription else None
    if payment_intent is not None:
        inv["payments"] = {"object": "list", "has_more": False, "url": "/v1/invoice_payments", "data": [{
            "object": "invoice_payment", "id": new_id("inpay"), "amount_paid": amount if paid else None,
            "amount_requested": amount, "currency": currency, "is_default": True,
            "status": "paid" if paid else "open",
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        }]}
    else:
        inv.pop("payments", None)
    inv.pop("subscription", None)
    inv.pop("payment_intent", None)
    for line in inv["lines"]["data"]:
        line["period"] = {"start": now, "end": inv["period_end"]}
    return inv


def invoice_old_shape(
    *, subscription: str | None, payment_intent: str | None = None, amount: int = 999,
    currency: str = "usd", paid: bool = True,
) -> dict[str, Any]:
    """An invoice as API versions before 2025-03-31 sent it (top-level ids)."""
    inv = invoice_new_shape(subscription=None, amount=amount, currency=currency, paid=paid)
    inv.pop("parent", None)
    inv.pop("payments", None)
    inv["subscription"] = subscription
    inv["payment_intent"] = payment_intent
    return inv


def payment_intent(*, id: str | None = None, amount: int = 1099, currency: str = "usd", succeeded: bool = True) -> dict[str, Any]:
    """A payment intent that succeeded, or failed with a declined card."""
    return resource(
        "payment_intent", id=id or new_id("pi"), amount=amount, currency=currency, livemode=False,
        amount_received=amount if succeeded else 0,
        status="succeeded" if succeeded else "requires_payment_method",
        last_payment_error=None if succeeded else {"type": "card_error", "code": "card_declined"},
    )


def transfer(*, id: str | None = None, amount: int = 1100, currency: str = "usd", reversed_amount: int = 0) -> dict[str, Any]:
    """A Connect transfer, optionally (partly) reversed."""
    return resource(
        "transfer", id=id or new_id("tr"), amount=amount, currency=currency, livemode=False,
        amount_reversed=reversed_amount, reversed=reversed_amount >= amount > 0,
    )


def subscription(*, id: str | None = None, status: str = "active", customer: str = "cus_sim") -> dict[str, Any]:
    """A Billing subscription in `status`."""
    return resource("subscription", id=id or new_id("sub"), status=status, customer=customer, livemode=False)


def invoice_payment(*, payment_intent: str, amount: int = 999, currency: str = "usd") -> dict[str, Any]:
    """An invoice payment (API 2025-05-28 and later) paid by `payment_intent`."""
    return resource(
        "invoice_payment", id=new_id("inpay"), amount_paid=amount, amount_requested=amount,
        currency=currency, status="paid", invoice=new_id("in"), livemode=False,
        payment={"type": "payment_intent", "payment_intent": payment_intent},
    )


def customer(*, id: str | None = None, email: str = "someone@example.com") -> dict[str, Any]:
    """A customer, for event types Trackit ignores (`customer.created`)."""
    return resource("customer", id=id or new_id("cus"), email=email, livemode=False)


def body_of(evt: dict[str, Any]) -> bytes:
    """The event as Stripe sends it on the wire: compact JSON."""
    return json.dumps(evt, separators=(",", ":")).encode()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header as Stripe makes it."""
    t = int(time.time()) if timestamp is None else timestamp
    return str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret, t))
