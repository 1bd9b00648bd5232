"""Pre-signed, unique Stripe events for load generators: one `signature<TAB>body` a line."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.fixtures.stripe_events import event, invoice_new_shape, payment_intent, transfer

_PLACEHOLDER = "evt_PLACEHOLDER"
# A realistic mix of what Stripe sends: invoices are ~4 KB, intents ~1.4 KB, transfers ~0.7 KB.
_KINDS: list[Callable[[], dict[str, Any]]] = [
    lambda: event("invoice.paid", invoice_new_shape(subscription=f"sub_b{uuid.uuid4().hex[:12]}",
                                                    payment_intent=f"pi_b{uuid.uuid4().hex[:12]}")),
    lambda: event("payment_intent.succeeded", payment_intent()),
    lambda: event("transfer.created", transfer()),
]


def unique_bodies(count: int) -> Iterator[str]:
    """`count` event bodies of the mix, each with an event id never used before."""
    run = uuid.uuid4().hex[:10]
    # Only the envelope id must be unique for the inbox; serialising each template once
    # keeps generation from being slower than the servers it feeds.
    templates = [json.dumps({**make(), "id": _PLACEHOLDER}, separators=(",", ":")) for make in _KINDS]
    for i, template in zip(range(count), itertools.cycle(templates)):
        yield template.replace(_PLACEHOLDER, f"evt_bench{run}{i:08d}", 1)


def signature(body: str, secret: str, timestamp: int) -> str:
    """A `Stripe-Signature` header, as stripe.WebhookSignature.generate_signature_header makes it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def write_signed(path: Path, count: int, secret: str) -> float:
    """Write `count` signed unique events to `path`; return the mean body size in bytes.

    Signed now: they stay valid for the server's timestamp tolerance (300 s by default)."""
    now = int(time.time())
    total = 0
    with path.open("w") as out:
        for body in unique_bodies(count):
            total += len(body)
            out.write(f"{signature(body, secret, now)}\t{body}\n")
    return total / max(count, 1)


def read_signed(path: Path) -> list[tuple[str, bytes]]:
    """The (signature, body) pairs of a file written by `write_signed`."""
    pairs = []
    with path.open() as lines:
        for line in lines:
            header, body = line.rstrip("\n").split("\t", 1)
            pairs.append((header, body.encode()))
    return pairs
