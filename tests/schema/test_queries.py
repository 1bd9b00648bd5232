"""Reading through the schema: connections newest first, the data SPEC names, errors
with their codes, the size limits, and a constant number of database queries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tortoise.log import db_client_logger

from tests.fixtures import records
from tests.schema.api import Api, error_codes

DEBTS_PAGE = """query($first: Int, $after: String) {
  debts(first: $first, after: $after) {
    edges { cursor node { id amountCents status debtor { name } creditor { name }
                          group { name members { name } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.queries += 1


@contextmanager
def counting_queries() -> Iterator[_Count]:
    """Every statement the database clients run (they log each one at DEBUG)."""
    counter, level = _Count(), db_client_logger.level
    db_client_logger.addHandler(counter)
    db_client_logger.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        db_client_logger.removeHandler(counter)
        db_client_logger.setLevel(level)


async def test_debts_page_newest_first_with_opaque_cursors(api: Api) -> None:
    debtor, creditor = await records.create_user(), await records.create_user()
    group = await records.create_group([debtor, creditor])
    made = [await records.create_debt(group=group, debtor=debtor, creditor=creditor, amount_cents=100 + i)
            for i in range(5)]
    admin = api.admin_token()
    first = (await api.data(DEBTS_PAGE, admin, first=3))["debts"]
    assert [e["node"]["id"] for e in first["edges"]] == [str(d.id) for d in reversed(made)][:3]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["edges"][0]["cursor"] != first["edges"][0]["node"]["id"]
    rest = (await api.data(DEBTS_PAGE, admin, first=3, after=first["pageInfo"]["endCursor"]))["debts"]
    assert [e["node"]["id"] for e in rest["edges"]] == [str(made[1].id), str(made[0].id)]
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": rest["edges"][-1]["cursor"]}
    node = rest["edges"][-1]["node"]
    assert node["debtor"]["name"] == debtor.name and node["group"]["name"] == group.name
    assert {m["name"] for m in node["group"]["members"]} == {debtor.name, creditor.name}


async def test_a_page_of_50_debts_with_users_and_groups_costs_constant_queries(api: Api) -> None:
    users = [await records.create_user() for _ in range(6)]
    groups = [await records.create_group(users[i : i + 3]) for i in range(0, 6, 3)]
    for i in range(50):
        group = groups[i % 2]
        members = users[:3] if group is groups[0] else users[3:]
        await records.create_debt(group=group, debtor=members[i % 3], creditor=members[(i + 1) % 3])
    admin = api.admin_token()
    with counting_queries() as five:
        page = await api.data(DEBTS_PAGE, admin, first=5)
    assert len(page["debts"]["edges"]) == 5
    with counting_queries() as fifty:
        page = await api.data(DEBTS_PAGE, admin, first=50)
    assert len(page["debts"]["edges"]) == 50
    # debts, users, groups, memberships: one query each, however many debts.
    assert fifty.queries == five.queries <= 4


async def test_a_user_and_their_records(api: Api) -> None:
    user, mate = await records.create_user(), await records.create_user()
    group = await records.create_group([user, mate])
    debt = await records.create_debt(group=group, debtor=user, creditor=mate, amount_cents=700)
    await records.create_pro_subscription(user)
    data = await api.data(
        """{ me { id email plan proSubscription { status user { id } }
                  debts(status: OPEN) { id amountCents currency } payments { edges { cursor } } } }""",
        api.user_token(user.id),
    )
    me = data["me"]
    assert me["id"] == str(user.id) and me["email"] == user.email and me["plan"] == "FREE"
    assert me["proSubscription"] == {"status": "PENDING", "user": {"id": str(user.id)}}
    assert me["debts"] == [{"id": str(debt.id), "amountCents": 700, "currency": "usd"}]
    assert me["payments"] == {"edges": []}
    balances = await api.data(
        "query($id: ID!) { group(id: $id) { balances { user { id } currency netCents } } }",
        api.user_token(mate.id), id=group.id,
    )
    assert {(b["user"]["id"], b["netCents"]) for b in balances["group"]["balances"]} == {
        (str(user.id), -700), (str(mate.id), 700)
    }


async def test_mutation_errors_carry_the_domain_code(api: Api) -> None:
    admin = api.admin_token()
    user = await records.create_user()
    taken = await api.execute(
        "mutation($e: String!) { createUser(email: $e, name: \"Dup\") { id } }", admin, e=user.email
    )
    assert error_codes(taken) == ["CONFLICT"]
    debt = await records.create_pending_settlement()
    again = await api.execute(
        "mutation($d: ID!) { registerSettlement(debtId: $d, transferId: \"tr_x\") { id } }", admin, d=debt.id
    )
    assert error_codes(again) == ["CONFLICT"]
    no_id = await api.execute("mutation($d: ID!) { registerSettlement(debtId: $d) { id } }", admin, d=debt.id)
    assert error_codes(no_id) == ["BAD_USER_INPUT"]
    missing = await api.execute(
        "mutation { registerSettlement(debtId: \"987654\", transferId: \"tr_y\") { id } }", admin
    )
    assert error_codes(missing) == ["NOT_FOUND"]
    not_an_id = await api.execute("{ debt(id: \"abc\") { id } }", admin)
    assert error_codes(not_an_id) == ["BAD_USER_INPUT"]
    bad_cursor = await api.execute("{ debts(after: \"nope\") { edges { cursor } } }", admin)
    assert error_codes(bad_cursor) == ["BAD_USER_INPUT"]
    absent = await api.data("{ debt(id: \"987654\") { id } webhookEvent(id: \"evt_none\") { id } }", admin)
    assert absent == {"debt": None, "webhookEvent": None}


async def test_deep_and_oversized_queries_are_refused(api: Api) -> None:
    admin = api.admin_token()
    levels = api.settings.max_query_depth
    nested = "{ debts { edges { node { " + "group { debts { " * levels + "id" + " } }" * levels + " } } } }"
    deep = await api.execute(nested, admin)
    assert error_codes(deep) == ["BAD_USER_INPUT"] and "depth" in deep.errors[0].message  # type: ignore[index]
    aliases = " ".join(f"a{i}: reconciliationStats {{ dead }}" for i in range(30))
    assert error_codes(await api.execute(f"{{ {aliases} }}", admin))[0] == "BAD_USER_INPUT"
    huge = "{ " + " ".join("__typename" for _ in range(api.settings.max_query_tokens)) + " }"
    assert error_codes(await api.execute(huge, admin))[0] == "BAD_USER_INPUT"
