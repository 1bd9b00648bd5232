"""The audit chain's genesis row, and (PostgreSQL) a trigger that refuses UPDATE and
DELETE on the audit log: append-only is enforced by the database, not by politeness."""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

GENESIS_HASH = "0" * 64

AUDIT_GUARD_SQL = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
CREATE TRIGGER audit_entry_no_truncate
    BEFORE TRUNCATE ON audit_entry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only();
"""

AUDIT_UNGUARD_SQL = """
DROP TRIGGER IF EXISTS audit_entry_no_update_delete ON audit_entry;
DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


async def forward(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    await client.execute_query(
        "INSERT INTO ledger_head (id, last_id, last_hash) VALUES (1, 0, ?)".replace(
            "?", "$1" if client.capabilities.dialect == "postgres" else "?"
        ),
        [GENESIS_HASH],
    )
    if client.capabilities.dialect == "postgres":
        await client.execute_script(AUDIT_GUARD_SQL)


async def backward(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script(AUDIT_UNGUARD_SQL)
    await client.execute_query("DELETE FROM ledger_head")


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [ops.RunPython(forward, backward)]
