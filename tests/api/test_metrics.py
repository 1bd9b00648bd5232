"""`/metrics` shows the figures of SPEC section 10, from the serve process and, in
distributed mode, from the worker process that reconciles."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from api.settings import Settings
from api.tokens import issue_token
from tests.fixtures.operator import AdminApi
from tests.fixtures.processes import Server
from tests.fixtures.services import free_port, wait_until
from tests.fixtures.stripe_events import body_of, event, transfer, unique_id

Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    """The suite's settings; a distributed worker also serves its own /metrics."""
    if settings.distributed:
        return settings.model_copy(update={"worker_metrics_port": free_port()})
    return settings


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


async def test_metrics_count_what_happened_to_the_webhooks(service: Server, settings: Settings) -> None:
    api = AdminApi(service, settings)
    debt = api.debt_awaiting_settlement(amount_cents=1100, transfer_id=unique_id("tr"))
    ignored = event("customer.created", {"id": "cus_metrics", "object": "customer"})
    mismatched = event("transfer.created", transfer(id=debt["transferId"], amount=999))
    assert service.post_event(ignored).status_code == 200
    assert service.post_event(ignored).json()["duplicate"] is True
    assert service.post_event(mismatched).status_code == 200
    forged = service.post_raw(body_of(event("customer.created", {"id": "cus_x"})),
                              {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"})
    assert forged.status_code == 400
    await wait_until(lambda: api.event_status(mismatched["id"]) == "DEAD", timeout=20, message="mismatch DEAD")
    await wait_until(lambda: api.event_status(ignored["id"]) == "IGNORED", timeout=20, message="ignored")

    served = scrape(f"{service.base_url}/metrics")
    assert total(served, "trackit_webhook_events_received_total", type="customer.created") == 1
    assert total(served, "trackit_webhook_events_received_total", type="transfer.created") == 1
    assert total(served, "trackit_webhook_events_duplicate_total") == 1
    assert total(served, "trackit_webhook_requests_rejected_total") == 1
    assert total(served, "trackit_webhook_ingest_seconds_count") == 3  # every 200, duplicates too
    assert total(served, "trackit_webhook_backlog", status="DEAD") == 1
    assert total(served, "trackit_webhook_backlog", status="RECEIVED") == 0

    worker_url = (
        f"http://127.0.0.1:{settings.worker_metrics_port}/metrics" if settings.distributed
        else f"{service.base_url}/metrics"
    )
    reconciled = scrape(worker_url)
    assert total(reconciled, "trackit_webhook_events_processed_total") >= 2
    assert total(reconciled, "trackit_webhook_events_dead_total") == 1
    assert total(reconciled, "trackit_receive_to_processed_seconds_count") >= 2

    await _websocket_subscribers_are_counted(service, settings)


async def _websocket_subscribers_are_counted(service: Server, settings: Settings) -> None:
    def subscribers() -> float:
        return total(scrape(f"{service.base_url}/metrics"), "trackit_websocket_subscribers")

    before = subscribers()
    url = service.base_url.replace("http://", "ws://") + "/graphql"
    token = issue_token(settings, "ops-metrics", "admin")
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": "subscription { reconciliationFeed { sequence } }"}}))
        await wait_until(lambda: subscribers() == before + 1, timeout=10, message="one more subscriber")
    await wait_until(lambda: subscribers() == before, timeout=10, message="subscriber gone")
