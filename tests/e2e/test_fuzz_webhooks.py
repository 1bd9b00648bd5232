"""Fuzzing the webhook route of a real server with generated requests: random bodies,
headers and signatures (valid and not), huge and odd JSON, wrong types in `data.object`.
No request gets a 5xx, the server and its worker stay up and healthy, and every stored
event is handled: those whose object can never be processed end in a final status."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.settings import Settings
from tests.fixtures.processes import Proc, Server
from tests.fixtures.services import db_rows, wait_until
from tests.fixtures.stripe_events import event, invoice_new_shape, payment_intent, subscription, transfer

EXAMPLES = 1000
FINAL = {"PROCESSED", "IGNORED", "DEAD"}

# The handled types and the Stripe object each expects in `data.object`.
HANDLED = {
    "invoice.paid": "invoice", "invoice.payment_succeeded": "invoice", "invoice.payment_failed": "invoice",
    "customer.subscription.updated": "subscription", "customer.subscription.deleted": "subscription",
    "payment_intent.succeeded": "payment_intent", "payment_intent.payment_failed": "payment_intent",
    "invoice_payment.paid": "invoice_payment", "transfer.created": "transfer", "transfer.succeeded": "transfer",
    "transfer.paid": "transfer", "transfer.reversed": "transfer",
}
VALID_OBJECTS = {
    "invoice": lambda: invoice_new_shape(subscription="sub_fuzz", payment_intent="pi_fuzz"),
    "subscription": lambda: subscription(id="sub_fuzz"),
    "payment_intent": lambda: payment_intent(id="pi_fuzz"),
    "invoice_payment": lambda: {"object": "invoice_payment", "id": "inpay_fuzz", "payment": {"payment_intent": "pi_fuzz"}},
    "transfer": lambda: transfer(id="tr_fuzz"),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)


@dataclass
class Body:
    """A request body and what the test knows about it."""

    raw: bytes
    # Its `data.object` can never be processed: a handled type whose object is missing,
    # not an object, or another kind of Stripe object.
    unprocessable: bool = False


@st.composite
def envelopes(draw: st.DrawFn) -> Body:
    """Event envelopes of handled and unknown types, with broken or mistyped parts."""
    event_type = draw(st.sampled_from(sorted(HANDLED)) | st.text(max_size=40))
    kind = HANDLED.get(event_type)
    flavour = draw(st.sampled_from(["valid", "missing", "not_object", "other_kind", "wrong_types"]))
    obj: Any
    if kind is None or flavour == "valid":
        obj = VALID_OBJECTS[kind or "transfer"]()
    elif flavour == "missing":
        obj = None
    elif flavour == "not_object":
        obj = draw(st.none() | st.integers() | st.text() | st.lists(json_values, max_size=3))
    elif flavour == "other_kind":
        obj = {**VALID_OBJECTS[kind](), "object": draw(st.sampled_from(sorted(set(VALID_OBJECTS) - {kind})))}
    else:
        # A real object of the right kind with some fields replaced by anything at all.
        obj = VALID_OBJECTS[kind]()
        for key in draw(st.lists(st.sampled_from(sorted(obj)), min_size=1, max_size=6, unique=True)):
            obj[key] = draw(json_values)
    evt = event(event_type, {}, id=f"evt_fuzz_{draw(st.uuids()).hex}")
    evt["data"] = {} if flavour == "missing" and kind else {"object": obj}
    for key in draw(st.lists(st.sampled_from(["created", "livemode", "api_version", "data"]), max_size=2, unique=True)):
        evt[key] = draw(json_values)  # the envelope's own fields with odd types too
    data = evt.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    unprocessable = kind is not None and not (isinstance(obj, dict) and obj.get("object") == kind)
    return Body(json.dumps(evt).encode(), unprocessable=unprocessable)


def huge_or_odd() -> st.SearchStrategy[Body]:
    return st.sampled_from([
        Body(b"[" * 100_000 + b"]" * 100_000),  # deeper than any parser's limit
        Body(b'{"id": "evt_deep", "type": "transfer.created", "data": ' + b'{"a":' * 2000 + b"1" + b"}" * 2001),
        Body(b'{"id": "evt_big", "type": "x", "pad": "' + b"x" * (1024 * 1024) + b'"}'),  # over 1 MiB
        Body(b'{"id": "evt_dup", "id": 7, "type": "x"}'),
        Body(b'{"id": "evt_\\u0000nul", "type": "x\\u0000"}'),
        Body(b'{"id": "evt_surrogate\\ud800", "type": "x"}'),
        Body(b'{"id": "evt_nul_inside", "type": "transfer.created", "created": 1700000000, "data": {"object": '
             b'{"object": "transfer", "id": "tr_\\u0000", "amount": 1, "currency": "usd"}}}'),
        Body('{"id": "évt_ünïcødé_🦄", "type": "transfer.created", "data": {"object": "🦄"}}'.encode()),
        Body(b'{"id": 1e400, "type": "x"}'),
        Body(b'{"id": "' + b"e" * 300 + b'", "type": "x"}'),
        Body(b"\xff\xfe\x00{}"),
        Body(b""),
        Body(b"null"),
    ])


bodies = st.one_of(
    envelopes(),
    json_values.map(lambda v: Body(json.dumps(v).encode())),
    st.binary(max_size=2000).map(Body),
    st.text(max_size=500).map(lambda t: Body(t.encode())),
    huge_or_odd(),
)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@st.composite
def requests(draw: st.DrawFn, secret: str) -> tuple[Body, dict[str, str], bool]:
    """(body, headers, whether the signature is valid and current)."""
    body = draw(bodies)
    now = int(time.time())
    how = draw(st.sampled_from(["valid", "valid", "valid", "stale", "wrong_secret", "garbage", "missing", "tampered", "rotated"]))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))}
    if how in ("valid", "rotated"):
        header = signature(secret, body.raw, now)
        if how == "rotated":  # several v1 values, one of them right: how secret rotation looks
            header = f"t={now},v1={'0' * 64},{header.split(',')[1]}"
        headers["Stripe-Signature"] = header
    elif how == "stale":
        headers["Stripe-Signature"] = signature(secret, body.raw, now - 3600)
    elif how == "wrong_secret":
        headers["Stripe-Signature"] = signature("whsec_not_ours", body.raw, now)
    elif how == "garbage":
        # Printable ASCII without edge spaces: what an HTTP client lets through at all.
        garbage = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)).strip()
        headers["Stripe-Signature"] = garbage or "t="
    elif how == "tampered":
        headers["Stripe-Signature"] = signature(secret, body.raw + b" ", now)
    return body, headers, how in ("valid", "rotated")


def acceptable(body: bytes, max_bytes: int) -> bool:
    """Whether the route must store this correctly signed body (SPEC section 4)."""
    if len(body) > max_bytes:
        return False
    try:
        evt = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    # A NUL character is no part of any Stripe id, and PostgreSQL text cannot hold it.
    return isinstance(evt, dict) and all(
        isinstance(evt.get(k), str) and 0 < len(evt[k]) <= 255 and "\x00" not in evt[k] for k in ("id", "type")
    )


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    stored: set[str] = field(default_factory=set)
    unprocessable: set[str] = field(default_factory=set)


def fuzz(server: Server, settings: Settings, tally: Tally) -> None:
    """Send EXAMPLES generated requests, checking each answer as it comes."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:

        @hsettings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        @given(requests(server.secret))
        def one(request: tuple[Body, dict[str, str], bool]) -> None:
            body, headers, signed = request
            response = client.post("/webhooks/stripe", content=body.raw, headers=headers)
            tally.statuses[response.status_code] += 1
            answer = response.json()
            if len(body.raw) > settings.webhook_max_bytes:
                assert response.status_code == 413, answer
            elif signed and acceptable(body.raw, settings.webhook_max_bytes):
                assert response.status_code == 200, answer
                assert set(answer) == {"received", "duplicate"}
                event_id = orjson.loads(body.raw)["id"]
                if not answer["duplicate"]:
                    tally.stored.add(event_id)
                    if body.unprocessable:
                        tally.unprocessable.add(event_id)
            else:
                assert response.status_code == 400, (response.status_code, answer, body.raw[:200], headers)
                assert isinstance(answer.get("error"), str)

        one()


@pytest.mark.timeout(300)
async def test_generated_webhook_requests_never_get_a_5xx_nor_crash_anything(
    service: Server, settings: Settings, processes: list[Proc]
) -> None:
    tally = Tally()
    await asyncio.to_thread(fuzz, service, settings, tally)
    assert sum(tally.statuses.values()) >= EXAMPLES
    assert not [s for s in tally.statuses if s >= 500], tally.statuses
    assert tally.statuses[200] and tally.statuses[400], f"both kinds of answer were exercised: {tally.statuses}"
    assert tally.unprocessable, "some stored events had an object that can never be processed"

    for proc in processes:
        assert proc.popen is not None and proc.popen.poll() is None, f"{proc.args} died:\n{proc.log()[-3000:]}"
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200

    async def statuses() -> dict[str, str]:
        rows = await db_rows(settings.database_url, "SELECT id, status FROM webhook_event")
        return {str(r["id"]): str(r["status"]) for r in rows}

    async def all_handled() -> bool:
        # The worker took every stored event: none is left as it arrived; those that can
        # never be processed are final (DEAD at once, or after their retries).
        now = await statuses()
        return all(s != "RECEIVED" for s in now.values()) and all(now[i] in FINAL for i in tally.unprocessable)

    await wait_until(all_handled, timeout=120, interval=0.5, message="every stored fuzz event handled")
    assert set(await statuses()) == tally.stored, "exactly the accepted events are stored"
    for proc in processes:
        assert proc.popen is not None and proc.popen.poll() is None, f"{proc.args} died after the fuzz"
