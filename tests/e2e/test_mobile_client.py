"""The mobile client (`python -m frontend_stub.mobile_client`) watching one debt: it
prints SETTLED for its debt, nothing for other debts, and reconnects on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from tests.fixtures.operator import AdminApi
from tests.fixtures.processes import Proc, Server, start_server
from tests.fixtures.services import wait_until
from tests.fixtures.stripe_events import event, transfer, unique_id

ROOT = Path(__file__).resolve().parents[2]


class Client:
    """The client as a child process; its stdout lines parsed as they come."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(json.loads(line))

    def statuses(self) -> list[str]:
        return [line["status"] for line in self.lines]


@pytest.fixture
def watch(processes: list[Proc]) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(server: Server, token: str, debt_id: str) -> Client:
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        popen = subprocess.Popen(
            [sys.executable, "-m", "frontend_stub.mobile_client", "--url", url, "--token", token,
             "--debt-id", debt_id, "--json"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        started.append(popen)
        return Client(popen)

    yield start
    for popen in started:
        popen.kill()
        popen.wait(10)


async def test_the_phone_sees_its_debt_change_and_nothing_else(
    service: Server, settings: Settings, watch: Any, processes: list[Proc], tmp_path: Path
) -> None:
    api = AdminApi(service, settings)
    mine = api.debt_awaiting_settlement(amount_cents=2000, transfer_id=unique_id("tr"))
    other = api.debt_awaiting_settlement(amount_cents=3000, transfer_id=unique_id("tr"))
    phone = watch(service, api.token, mine["id"])
    await wait_until(lambda: phone.statuses() == ["PENDING_SETTLEMENT"], timeout=20, message="current status")

    service.post_event(event("transfer.created", transfer(id=other["transferId"], amount=3000)))
    service.post_event(event("transfer.created", transfer(id=mine["transferId"], amount=2000)))

    await wait_until(lambda: "SETTLED" in phone.statuses(), timeout=20, message="SETTLED pushed")
    assert api.debt_status(other["id"]) == "SETTLED"
    assert [(line["status"], line["source"]) for line in phone.lines] == [
        ("PENDING_SETTLEMENT", "current"), ("SETTLED", "push")
    ]

    # The server dies and comes back on the same address; the phone finds it again and
    # learns of the reversal, whether pushed or read when it reconnects.
    service.kill()
    server = start_server(settings, tmp_path, name="serve-again", port=service.port)
    processes.append(server)
    server.post_event(event("transfer.reversed", transfer(id=mine["transferId"], amount=2000, reversed_amount=2000)))

    await wait_until(lambda: len(phone.lines) == 3, timeout=30, message="the reversal printed")
    assert phone.statuses() == ["PENDING_SETTLEMENT", "SETTLED", "OPEN"]
    assert {line["id"] for line in phone.lines} == {mine["id"]}, "nothing about the other debt"
    assert phone.popen.poll() is None, "the client keeps watching"
