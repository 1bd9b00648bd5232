"""`trackit simulate` against a live server: the demo ends where its scenario says,
with duplicates, out-of-order deliveries and one DEAD event on the way."""

from __future__ import annotations

import re
from pathlib import Path

from api.settings import Settings
from tests.fixtures.operator import AdminApi, run_trackit
from tests.fixtures.processes import Server


async def test_simulate_ends_with_the_expected_counts(service: Server, settings: Settings, tmp_path: Path) -> None:
    done = await run_trackit(settings, tmp_path, "simulate", "--url", service.base_url, "--count", "6", "--wait", "60")

    assert done.returncode == 0, done.stdout + done.stderr
    expected = re.search(r"^expected: (.*)$", done.stdout, re.M)
    actual = re.search(r"^actual:   (.*)$", done.stdout, re.M)
    assert expected and actual and expected.group(1) == actual.group(1), done.stdout
    assert "dead 1;" in actual.group(1) and "debts settled 5/6" in actual.group(1)
    sent = re.search(r"sent (\d+) webhooks: (\d+) events, (\d+) redeliveries, (\d+) out of order", done.stdout)
    assert sent is not None and int(sent.group(3)) > 0 and int(sent.group(4)) >= 2
    stats = AdminApi(service, settings)("{ reconciliationStats { received retrying dead } }")["reconciliationStats"]
    assert stats == {"received": 0, "retrying": 0, "dead": 1}
