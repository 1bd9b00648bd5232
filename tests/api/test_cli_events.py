"""`trackit events list|retry`: the on-call engineer finds the dead events and, once the
cause is fixed, sends them back through reconciliation."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings
from tests.fixtures.operator import AdminApi, run_trackit
from tests.fixtures.processes import Server
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import event, transfer, unique_id


# Distributed: the retry is enqueued to Redis by the CLI process itself (embedded mode
# leaves it to the server's sweeper, the path backfill's embedded run covers).
pytestmark = pytest.mark.parametrize("mode", ["distributed"], indirect=True)


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    """A one-second match window: an event for a transfer nobody registered dies fast."""
    return settings.model_copy(update={"match_window_s": 1})


async def test_dead_events_are_listed_then_retried_once_the_record_exists(
    service: Server, settings: Settings, tmp_path: Path
) -> None:
    api = AdminApi(service, settings)
    transfer_id = unique_id("tr")
    early = event("transfer.created", transfer(id=transfer_id, amount=1500))
    ignored = event("customer.created", {"id": "cus_cli", "object": "customer"})
    service.post_event(early)
    service.post_event(ignored)
    await wait_until(lambda: api.event_status(early["id"]) == "DEAD", timeout=30, message="unmatched event DEAD")

    listed = await run_trackit(settings, tmp_path, "events", "list", "--status", "DEAD")
    assert listed.returncode == 0, listed.stderr
    assert early["id"] in listed.stdout and "transfer.created" in listed.stdout
    assert ignored["id"] not in listed.stdout

    # The app registers the transfer late; the dead event waits for a human.
    debt = api.debt_awaiting_settlement(amount_cents=1500, transfer_id=transfer_id)
    assert api.event_status(early["id"]) == "DEAD"

    retried = await run_trackit(settings, tmp_path, "events", "retry", "--all-dead", "--type", "transfer.created")

    assert retried.returncode == 0, retried.stderr
    assert f"{early['id']}: RECEIVED" in retried.stdout and "retried 1, refused 0" in retried.stdout
    await wait_until(lambda: api.debt_status(debt["id"]) == "SETTLED", timeout=30, message="settled after the retry")
    assert api.event_status(early["id"]) == "PROCESSED"

    refused = await run_trackit(settings, tmp_path, "events", "retry", ignored["id"])
    assert refused.returncode == 1
    assert "nothing to retry" in refused.stderr
