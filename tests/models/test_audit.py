"""The audit log: append-only, hash-chained; tampering with any row is detected and
`trackit audit verify` names the first broken entry. PostgreSQL refuses UPDATE/DELETE."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tortoise.connection import get_connection

from api.settings import Settings
from models.audit import verify_chain
from models.db import is_postgres
from models.tables import AuditEntry
from tests.fixtures import stripe_events as se
from tests.fixtures.processes import TRACKIT, settings_env
from tests.fixtures.records import create_pending_settlement, create_pro_subscription
from tests.tasks.inbox import deliver


async def make_history(settings: Settings) -> list[int]:
    sub = await create_pro_subscription()
    await deliver(se.event("invoice.paid", se.invoice_new_shape(subscription=sub.stripe_subscription_id)), settings)
    tr = se.unique_id("tr")
    await create_pending_settlement(transfer_id=tr, amount_cents=1100)
    await deliver(se.event("transfer.created", se.transfer(id=tr, amount=1100)), settings)
    await deliver(se.event("customer.created", {"id": "cus_x", "object": "customer"}), settings)
    return list(await AuditEntry.all().order_by("id").values_list("id", flat=True))  # type: ignore[arg-type]


@asynccontextmanager
async def tamper_allowed() -> AsyncIterator[None]:
    """On PostgreSQL the trigger refuses changes: a superuser disables it for the test."""
    conn = get_connection("default")
    if is_postgres():
        await conn.execute_script("ALTER TABLE audit_entry DISABLE TRIGGER USER")
    try:
        yield
    finally:
        if is_postgres():
            await conn.execute_script("ALTER TABLE audit_entry ENABLE TRIGGER USER")


def param(n: int) -> str:
    return f"${n}" if is_postgres() else "?"


async def test_tampering_with_any_entry_is_detected(db: Settings) -> None:
    ids = await make_history(db)
    assert len(ids) >= 10
    assert (await verify_chain()).first_broken_id is None
    conn = get_connection("default")
    async with tamper_allowed():
        for entry_id in ids:
            await conn.execute_query(f"UPDATE audit_entry SET actor = actor || 'x' WHERE id = {param(1)}", [entry_id])
            report = await verify_chain()
            assert report.first_broken_id == entry_id, report
            await conn.execute_query(f"UPDATE audit_entry SET actor = substr(actor, 1, length(actor) - 1) WHERE id = {param(1)}", [entry_id])
        assert (await verify_chain()).first_broken_id is None
        # Changing `after` and recomputing this entry's hash still breaks the next link.
        victim = await AuditEntry.get(id=ids[3])
        await conn.execute_query(
            f"UPDATE audit_entry SET hash = {param(1)} WHERE id = {param(2)}", ["f" * 64, victim.id]
        )
        assert (await verify_chain()).first_broken_id == victim.id
        await conn.execute_query(f"UPDATE audit_entry SET hash = {param(1)} WHERE id = {param(2)}", [victim.hash, victim.id])
        # A deleted entry breaks the link of the one after it.
        await conn.execute_query(f"DELETE FROM audit_entry WHERE id = {param(1)}", [ids[5]])
        assert (await verify_chain()).first_broken_id == ids[6]


async def test_cli_verify_names_the_first_broken_entry(db: Settings, tmp_path: object) -> None:
    ids = await make_history(db)
    env = settings_env(db)
    ok = subprocess.run([TRACKIT, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"{len(ids)} entries" in ok.stdout
    async with tamper_allowed():
        await get_connection("default").execute_query(
            f"UPDATE audit_entry SET after = NULL WHERE id = {param(1)}", [ids[2]]
        )
    broken = subprocess.run([TRACKIT, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert f"entry {ids[2]}" in broken.stderr


# The append-only trigger is PostgreSQL's (SPEC section 6): this runs in that mode only.
@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_entry SET actor = 'mallory'", "DELETE FROM audit_entry", "TRUNCATE audit_entry"],
)
async def test_postgres_refuses_update_delete_truncate(db: Settings, statement: str) -> None:
    await make_history(db)
    before = await AuditEntry.all().count()
    with pytest.raises(Exception, match="append-only"):
        await get_connection("default").execute_script(statement)
    assert await AuditEntry.all().count() == before
    assert (await verify_chain()).first_broken_id is None
