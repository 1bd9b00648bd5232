"""`trackit reconcile-stuck`: a record pending for too long is looked up at Stripe and
reconciled from what Stripe says, through the inbox, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings
from tests.fixtures.fake_stripe import FakeStripe, fake_stripe  # noqa: F401 (fixture)
from tests.fixtures.operator import AdminApi, run_trackit
from tests.fixtures.processes import Server
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import payment_intent, transfer, unique_id

# The inbox path (store, then the worker or the sweeper) is the same as backfill's,
# which runs in both modes.
pytestmark = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


async def test_a_debt_whose_webhook_never_came_is_settled_from_stripe(
    service: Server, settings: Settings, fake_stripe: FakeStripe, tmp_path: Path  # noqa: F811
) -> None:
    api = AdminApi(service, settings)
    by_transfer = api.debt_awaiting_settlement(amount_cents=2500, transfer_id=unique_id("tr"))
    by_intent = api.debt_awaiting_settlement(amount_cents=1200, payment_intent_id=unique_id("pi"))
    still_processing = api.debt_awaiting_settlement(amount_cents=900, payment_intent_id=unique_id("pi"))
    fake_stripe.add_object(transfer(id=by_transfer["transferId"], amount=2500))
    fake_stripe.add_object(payment_intent(id=by_intent["paymentIntentId"], amount=1200))
    fake_stripe.add_object({**payment_intent(id=still_processing["paymentIntentId"], amount=900), "status": "processing"})
    env = {"TRACKIT_STRIPE_API_BASE": fake_stripe.base_url, "STRIPE_API_KEY": fake_stripe.api_key}

    done = await run_trackit(settings, tmp_path, "reconcile-stuck", "--older-than", "0", env=env)

    assert done.returncode == 0, done.stderr
    assert "3 stuck records older than 0 s: 2 events stored, 0 already stored, 1 with nothing to apply" in done.stdout
    assert "is still processing at Stripe" in done.stdout
    await wait_until(lambda: api.debt_status(by_transfer["id"]) == "SETTLED", timeout=20, message="settled from the transfer")
    await wait_until(lambda: api.debt_status(by_intent["id"]) == "SETTLED", timeout=20, message="settled from the intent")
    assert api.debt_status(still_processing["id"]) == "PENDING_SETTLEMENT"
    synthetic = f"evt_sync_{by_transfer['transferId']}_created"
    assert api.event_status(synthetic) == "PROCESSED"

    again = await run_trackit(settings, tmp_path, "reconcile-stuck", "--older-than", "0", env=env)
    assert "1 stuck records older than 0 s: 0 events stored" in again.stdout

