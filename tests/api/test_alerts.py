"""A DEAD event's alert reaches the on-call receiver set as TRACKIT_ALERT_WEBHOOK_URL,
from the process that reconciles (serve in embedded mode, the worker in distributed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from api.settings import Settings
from tests.fixtures.operator import AdminApi
from tests.fixtures.processes import Server
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import event, transfer, unique_id


class Receiver(ThreadingHTTPServer):
    """A local alert receiver that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.alerts.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# Production's shape: the alert leaves from the worker process, not from serve.
pytestmark = pytest.mark.parametrize("mode", ["distributed"], indirect=True)


@pytest.fixture
async def settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(update={"alert_webhook_url": receiver.url})


async def test_an_amount_mismatch_goes_dead_and_alerts_the_receiver(
    service: Server, settings: Settings, receiver: Receiver
) -> None:
    api = AdminApi(service, settings)
    debt = api.debt_awaiting_settlement(amount_cents=1100, transfer_id=unique_id("tr"))
    fine = event("customer.created", {"id": "cus_alerts", "object": "customer"})
    wrong = event("transfer.created", transfer(id=debt["transferId"], amount=1000))

    service.post_event(fine)
    service.post_event(wrong)

    await wait_until(lambda: receiver.alerts, timeout=20, message="an alert POST")
    await wait_until(lambda: api.event_status(fine["id"]) == "IGNORED", timeout=20, message="the other event done")
    assert len(receiver.alerts) == 1
    alert = receiver.alerts[0]
    assert alert["event_id"] == wrong["id"] and alert["status"] == "DEAD"
    assert "1000" in alert["reason"] and "1100" in alert["reason"]
    assert api.debt_status(debt["id"]) == "PENDING_SETTLEMENT"
