"""A shuffled mix of events with duplicates, reconciled concurrently in this process,
ends in the state an oracle computes from the unique events."""

from __future__ import annotations

import asyncio
import random

from api.settings import Settings
from models.audit import verify_chain
from models.balances import group_balances
from models.enums import WebhookEventStatus as S
from models.tables import Debt, WebhookEvent
from tasks.reconcile import reconcile
from tests.tasks.event_mix import build_mix, differences, unfinished
from tests.tasks.inbox import store


async def test_shuffled_duplicated_mix_matches_the_oracle(db: Settings) -> None:
    rng = random.Random(7)
    mix = await build_mix(60, rng)
    deliveries = mix.deliveries(0.3, rng)
    for evt in deliveries:
        await store(evt)
    for start in range(0, len(deliveries), 8):
        await asyncio.gather(*(reconcile(e["id"], db) for e in deliveries[start : start + 8]))
    # A reversal that overtook its transfer waits for the settlement: retry what waits.
    for _ in range(5):
        waiting = await WebhookEvent.filter(status=S.RETRYING).values_list("id", flat=True)
        if not waiting:
            break
        for event_id in waiting:
            await reconcile(str(event_id), db)
    assert await unfinished(mix) == 0
    assert await differences(mix) == []
    assert (await verify_chain()).first_broken_id is None
    group_ids = set(await Debt.filter(id__in=list(mix.debts)).values_list("group_id", flat=True))
    for group_id in group_ids:
        balances = await group_balances(int(group_id))  # type: ignore[call-overload]
        for currency in {b.currency for b in balances}:
            assert sum(b.net_cents for b in balances if b.currency == currency) == 0
