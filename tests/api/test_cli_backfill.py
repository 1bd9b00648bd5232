"""`trackit backfill --since`: stores exactly the events the webhook missed, from Stripe's
Events API (paged), and they get reconciled like any webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path

from api.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.fake_stripe import FakeStripe, fake_stripe  # noqa: F401 (fixture)
from tests.fixtures.operator import run_trackit
from tests.fixtures.processes import Server
from tests.fixtures.services import db_rows, wait_until
from tests.fixtures.stripe_events import event, transfer

DAY = 86400


def stripe_env(fake: FakeStripe) -> dict[str, str]:
    return {"TRACKIT_STRIPE_API_BASE": fake.base_url, "STRIPE_API_KEY": fake.api_key}


async def test_backfill_stores_exactly_the_missing_events(
    service: Server, settings: Settings, fake_stripe: FakeStripe, tmp_path: Path  # noqa: F811
) -> None:
    now = int(time.time())
    handled = [event("transfer.created", transfer(), created=now - i * 3600) for i in range(5)]
    delivered, missed = handled[:2], handled[2:]
    too_old = event("transfer.created", transfer(), created=now - 3 * DAY)
    unhandled = event("customer.created", {"id": "cus_backfill", "object": "customer"}, created=now - 60)
    for evt in [*handled, too_old, unhandled]:
        fake_stripe.add_event(evt)
    for evt in delivered:
        assert service.post_event(evt).json()["duplicate"] is False

    done = await run_trackit(settings, tmp_path, "backfill", "--since", "1d", "--page-size", "2", env=stripe_env(fake_stripe))

    assert done.returncode == 0, done.stderr
    assert "stored 3 missing events, 2 already present" in done.stdout
    stored = {r["id"]: r for r in await db_rows(settings.database_url, "SELECT id, payload FROM webhook_event")}
    assert set(stored) == {e["id"] for e in handled}
    assert json.loads(str(stored[missed[0]["id"]]["payload"]))["data"]["object"]["id"] == missed[0]["data"]["object"]["id"]
    # Five handled events at two a page: three requests, each asking for the handled types only.
    pages = [r for r in fake_stripe.requests if r.startswith("/v1/events")]
    assert len(pages) == 3 and all("transfer.created" in p and "customer.created" not in p for p in pages)

    async def reconciled() -> bool:
        rows = await db_rows(settings.database_url, "SELECT status FROM webhook_event")
        return all(r["status"] != "RECEIVED" for r in rows)

    # No debt has these transfers: the worker (or embedded sweeper) moves them to RETRYING.
    await wait_until(reconciled, timeout=20, message="backfilled events reconciled")

    again = await run_trackit(settings, tmp_path, "backfill", "--since", "1d", env=stripe_env(fake_stripe))
    assert "stored 0 missing events, 5 already present" in again.stdout


async def test_backfill_refuses_a_start_beyond_stripes_30_days(tmp_path: Path, fake_stripe: FakeStripe) -> None:  # noqa: F811
    settings = make_settings(f"sqlite://{tmp_path}/unused.db", distributed=False)

    done = await run_trackit(settings, tmp_path, "backfill", "--since", "45d", env=stripe_env(fake_stripe))

    assert done.returncode == 2
    assert "keeps only the last 30 days" in done.stderr
    assert fake_stripe.requests == []
