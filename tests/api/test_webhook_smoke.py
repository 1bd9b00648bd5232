"""A stored event answers 200 and is reconciled by the worker of its mode."""

from __future__ import annotations

import httpx

from tests.fixtures.processes import Server
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import event


async def test_new_event_is_stored_then_marked_by_the_worker(service: Server) -> None:
    evt = event("customer.created", {"id": "cus_1", "object": "customer"})
    first = service.post_event(evt)
    again = service.post_event(evt)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
