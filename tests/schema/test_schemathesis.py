"""Schemathesis generates GraphQL operations from the live schema (introspection) and
sends them, as an admin, to a real `trackit serve`: no 5xx, no internal error behind an
answer, and the server still healthy afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.core.result import Ok

from api.settings import Settings
from api.tokens import issue_token
from tests.fixtures.processes import Proc, Server

EXAMPLES_PER_OPERATION = 25
INTERNAL = "INTERNAL_SERVER_ERROR"


def run_schemathesis(server: Server, token: str, tally: Counter[str]) -> None:
    """Every query and mutation of the schema, EXAMPLES_PER_OPERATION generated cases each."""
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.graphql.from_url(f"{server.base_url}/graphql", headers=auth, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 10, "the schema offers its queries and mutations"
    for operation in operations:

        @hsettings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        @given(operation.as_strategy())
        def one(case: Any) -> None:
            response = case.call(headers=auth, timeout=30)
            tally[f"HTTP {response.status_code}"] += 1
            assert response.status_code < 500, (case.body, response.text[:500])
            for error in response.json().get("errors") or []:
                code = (error.get("extensions") or {}).get("code")
                tally[str(code)] += 1
                assert code != INTERNAL, (case.body, error)

        one()


@pytest.mark.timeout(300)
async def test_generated_graphql_operations_get_no_5xx_and_no_internal_error(
    service: Server, settings: Settings, processes: list[Proc]
) -> None:
    tally: Counter[str] = Counter()
    await asyncio.to_thread(run_schemathesis, service, issue_token(settings, "schemathesis", "admin"), tally)
    assert tally["HTTP 200"] > 0, tally
    for proc in processes:
        assert proc.popen is not None and proc.popen.poll() is None, f"{proc.args} died:\n{proc.log()[-3000:]}"
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
