"""The schema names exactly what SPEC section 7 writes: types, fields, arguments, their
types and defaults, enums and their values, the connections and the scalars."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLObjectType,
    ObjectTypeDefinitionNode,
    ast_from_value,
    parse,
    print_ast,
)

from api.settings import Settings
from schema.app import build_schema

SPEC = Path(__file__).resolve().parents[3] / "shared" / "SPEC.md"
# SPEC section 6 names the enums' values; section 7 uses them.
ENUMS = {
    "ProSubscriptionStatus": ["PENDING", "ACTIVE", "PAST_DUE", "CANCELED"],
    "DebtStatus": ["OPEN", "PENDING_SETTLEMENT", "SETTLED", "SETTLEMENT_FAILED"],
    "WebhookEventStatus": ["RECEIVED", "PROCESSING", "PROCESSED", "IGNORED", "RETRYING", "DEAD"],
    "PaymentKind": ["SUBSCRIPTION", "SETTLEMENT"],
    "PaymentStatus": ["SUCCEEDED", "FAILED", "REVERSED"],
    "Plan": ["FREE", "PRO"],
}


def spec_types() -> list[ObjectTypeDefinitionNode]:
    text = SPEC.read_text()
    section = text[text.index("## 7. GraphQL API") : text.index("## 8.")]
    block = re.search(r"```graphql\n(.*?)```", section, re.S)
    assert block is not None, "SPEC section 7 has no graphql block"
    return [d for d in parse(block.group(1)).definitions if isinstance(d, ObjectTypeDefinitionNode)]


def test_the_schema_has_every_name_of_spec_section_7() -> None:
    schema = build_schema(Settings(jwt_secret="x" * 32))
    print(schema.as_str())
    gql = schema._schema
    missing: list[str] = []
    for spec_type in spec_types():
        ours = gql.get_type(spec_type.name.value)
        if not isinstance(ours, GraphQLObjectType):
            missing.append(f"type {spec_type.name.value}")
            continue
        for spec_field in spec_type.fields or ():
            name = f"{spec_type.name.value}.{spec_field.name.value}"
            field = ours.fields.get(spec_field.name.value)
            if field is None:
                missing.append(name)
                continue
            if str(field.type) != print_ast(spec_field.type):
                missing.append(f"{name}: {field.type} instead of {print_ast(spec_field.type)}")
            for spec_arg in spec_field.arguments or ():
                arg = field.args.get(spec_arg.name.value)
                if arg is None:
                    missing.append(f"{name}({spec_arg.name.value})")
                    continue
                if str(arg.type) != print_ast(spec_arg.type):
                    missing.append(f"{name}({spec_arg.name.value}): {arg.type}")
                if spec_arg.default_value is not None:
                    ours_default = ast_from_value(arg.default_value, arg.type)
                    if ours_default is None or print_ast(ours_default) != print_ast(spec_arg.default_value):
                        missing.append(f"{name}({spec_arg.name.value}) default")
            extra_args = set(field.args) - {a.name.value for a in spec_field.arguments or ()}
            if extra_args:
                missing.append(f"{name} has arguments SPEC does not name: {sorted(extra_args)}")
    assert missing == []


def test_enums_scalars_connections_and_roots_are_named_as_spec_says() -> None:
    gql = build_schema(Settings(jwt_secret="x" * 32))._schema
    for name, values in ENUMS.items():
        enum = gql.get_type(name)
        assert isinstance(enum, GraphQLEnumType), name
        assert list(enum.values) == values
    assert gql.get_type("DateTime") is not None and gql.get_type("JSON") is not None
    for node in ("Payment", "ProSubscription", "Debt", "WebhookEvent", "AuditEntry"):
        conn = gql.get_type(f"{node}Connection")
        assert isinstance(conn, GraphQLObjectType), node
        assert str(conn.fields["pageInfo"].type) == "PageInfo!"
        edge = conn.fields["edges"].type.of_type.of_type.of_type  # [XEdge!]!
        assert str(edge.fields["cursor"].type) == "String!"
        assert str(edge.fields["node"].type) == f"{node}!"
    page_info = gql.get_type("PageInfo")
    assert isinstance(page_info, GraphQLObjectType)
    assert {n: str(f.type) for n, f in page_info.fields.items()} == {
        "hasNextPage": "Boolean!", "endCursor": "String"
    }
    assert gql.query_type and gql.query_type.name == "Query"
    assert gql.mutation_type and gql.mutation_type.name == "Mutation"
    assert gql.subscription_type and gql.subscription_type.name == "Subscription"
