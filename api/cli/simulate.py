"""`trackit simulate`: demo records through GraphQL, then realistic signed Stripe events
to a running server (both payload shapes, duplicates, out of order, one DEAD), so the
dashboard moves; at the end, the expected and the actual counts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from api.cli.operator import load_settings

if TYPE_CHECKING:
    import httpx

    from api.simulation import Expected, Scenario

# httpx, tqdm and stripe load only when the command runs: `trackit --help` stays quick.

# Stays under the server's limit of aliases per query.
ALIAS_CHUNK = 15
STATS = "reconciliationStats { received processing processed ignored retrying dead }"


class SimulationFailed(Exception):
    """The server refused a step; the message says which and why."""


class GraphQLClient:
    """Just enough GraphQL over HTTP for the demo."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http, self.token = http, token

    def __call__(self, query: str, step: str, **variables: Any) -> dict[str, Any]:
        import httpx

        try:
            response = self.http.post(
                "/graphql", json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SimulationFailed(f"{step}: {exc.__class__.__name__}: {exc}") from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            code = (errors[0].get("extensions") or {}).get("code", "ERROR")
            hint = ""
            if code in ("UNAUTHENTICATED", "FORBIDDEN"):
                hint = " (the token must be an admin token signed with the server's TRACKIT_JWT_SECRET: run simulate with the server's settings, or pass --token)"
            raise SimulationFailed(f"{step}: {errors[0].get('message')} [{code}]{hint}")
        data: dict[str, Any] = body["data"]
        return data


def simulate(
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="The running server"),
    count: int = typer.Option(8, "--count", min=2, max=500, help="Debts to settle (subscriptions: about half as many)"),
    delay: float = typer.Option(0.0, "--delay", min=0, help="Seconds between webhook deliveries (0.2 makes a good demo)"),
    wait: float = typer.Option(60.0, "--wait", min=0, help="Seconds to wait for the service to finish reconciling"),
    token: str | None = typer.Option(None, "--token", help="Admin token (default: one signed with TRACKIT_JWT_SECRET)"),
    secret: str | None = typer.Option(None, "--secret", help="Webhook secret (default: the first of TRACKIT_STRIPE_WEBHOOK_SECRETS)"),
    seed: int | None = typer.Option(None, "--seed", help="Seed for the delivery order"),
) -> None:
    """Create demo records and send realistic signed Stripe events to a running server."""
    import httpx

    from api.simulation import build_scenario
    from api.tokens import issue_token

    settings = load_settings()
    token = token or issue_token(settings, "simulate", "admin")
    secret = secret or settings.stripe_webhook_secrets[0]
    scenario = build_scenario(count, seed)
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as http:
        try:
            http.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            typer.echo(f"trackit simulate: no server answers at {url} ({exc}); start one with `trackit serve`", err=True)
            raise typer.Exit(2) from None
        gql = GraphQLClient(http, token)
        try:
            before = gql(f"query {{ {STATS} }}", "reading reconciliationStats")["reconciliationStats"]
            debt_ids, sub_users, sent = _run(http, gql, scenario, secret, delay)
            actual = _settle_down(gql, before, scenario.expected, wait)
            statuses = _final_statuses(gql, debt_ids, sub_users)
        except SimulationFailed as exc:
            typer.echo(f"trackit simulate: {exc}", err=True)
            raise typer.Exit(1) from None
    exp = scenario.expected
    actual.settled = statuses.count("SETTLED")
    actual.active = statuses.count("ACTIVE")
    typer.echo(
        f"sent {sent} webhooks: {exp.final_events} events, {exp.duplicates} redeliveries, "
        f"{exp.out_of_order} out of order, {exp.dead} meant to go DEAD"
    )
    typer.echo("expected: " + _summary(exp, len(debt_ids), len(sub_users)))
    typer.echo("actual:   " + _summary(actual, len(debt_ids), len(sub_users)))
    if _summary(exp, 0, 0) != _summary(actual, 0, 0):
        typer.echo("MISMATCH: the service did not end where the scenario says it must", err=True)
        raise typer.Exit(1)
    typer.echo("OK: every event reconciled as expected")


def _run(http: httpx.Client, gql: GraphQLClient, sc: Scenario, secret: str, delay: float) -> tuple[list[str], list[str], int]:
    from tqdm import tqdm

    late = [d for d in sc.debts if d.registered_late]
    steps = len(sc.users) + 1 + 2 * len(sc.debts) + len(sc.subscriptions) + len(sc.deliveries)
    with tqdm(total=steps, unit=" steps", desc="simulate", disable=None) as progress:
        user_ids = []
        for name, email in sc.users:
            user = gql("mutation($e: String!, $n: String!) { createUser(email: $e, name: $n) { id } }", f"createUser {email}", e=email, n=name)
            user_ids.append(user["createUser"]["id"])
            progress.update(1)
        group = gql("mutation($n: String!, $m: [ID!]!) { createGroup(name: $n, memberIds: $m) { id } }",
                    "createGroup", n="Demo flat-share", m=user_ids)["createGroup"]["id"]
        progress.update(1)
        debt_ids = []
        for debt in sc.debts:
            created = gql(
                "mutation($g: ID!, $d: ID!, $c: ID!, $a: Int!) { recordDebt(groupId: $g, debtorId: $d, creditorId: $c, amountCents: $a, currency: \"usd\") { id } }",
                f"recordDebt #{debt.index + 1}", g=group, d=user_ids[debt.debtor], c=user_ids[debt.creditor], a=debt.amount_cents,
            )
            debt_ids.append(created["recordDebt"]["id"])
            progress.update(1)
        sub_users = []
        for sub in sc.subscriptions:
            gql(
                "mutation($u: ID!, $s: String!, $c: String, $p: String) { registerProSubscription(userId: $u, stripeSubscriptionId: $s, stripeCustomerId: $c, paymentIntentId: $p) { id } }",
                f"registerProSubscription for user {user_ids[sub.user]}", u=user_ids[sub.user], s=sub.subscription_id,
                c=sub.customer_id, p=sub.payment_intent_id,
            )
            sub_users.append(user_ids[sub.user])
            progress.update(1)
        for debt in sc.debts:
            if not debt.registered_late:
                _register_settlement(gql, debt_ids[debt.index], debt.transfer_id, debt.payment_intent_id)
                progress.update(1)
        sent = 0
        for delivery in sc.deliveries:
            progress.set_postfix_str(delivery.note[:60])
            _deliver(http, delivery.event, secret, delivery.duplicate)
            sent += 1
            progress.update(1)
            if delay:
                time.sleep(delay)
        for debt in late:
            _register_settlement(gql, debt_ids[debt.index], debt.transfer_id, debt.payment_intent_id)
            progress.update(1)
    return debt_ids, sub_users, sent


def _register_settlement(gql: GraphQLClient, debt_id: str, transfer_id: str | None, intent_id: str | None) -> None:
    gql("mutation($d: ID!, $t: String, $p: String) { registerSettlement(debtId: $d, transferId: $t, paymentIntentId: $p) { id } }",
        f"registerSettlement for debt {debt_id}", d=debt_id, t=transfer_id, p=intent_id)


def _deliver(http: httpx.Client, event: dict[str, Any], secret: str, duplicate: bool) -> None:
    import httpx

    from api.stripe_payloads import body_of, sign

    body = body_of(event)
    headers = {"Stripe-Signature": sign(body, secret), "Content-Type": "application/json"}
    try:
        response = http.post("/webhooks/stripe", content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SimulationFailed(f"POST /webhooks/stripe {event['id']}: {exc}") from None
    if response.status_code != 200:
        hint = " (is --secret / TRACKIT_STRIPE_WEBHOOK_SECRETS the server's?)" if response.status_code == 400 else ""
        raise SimulationFailed(f"POST /webhooks/stripe {event['id']}: HTTP {response.status_code} {response.text}{hint}")
    if response.json().get("duplicate") != duplicate:
        raise SimulationFailed(f"{event['id']}: the server answered {response.text}, expected duplicate={duplicate}")


def _settle_down(gql: GraphQLClient, before: dict[str, int], exp: Expected, wait: float) -> Expected:
    """Poll the stats until every event sent reached a final status (or `wait` runs out)."""
    from tqdm import tqdm

    from api.simulation import Expected

    deadline = time.monotonic() + wait
    with tqdm(total=exp.final_events, unit=" events", desc="reconciled", disable=None) as progress:
        while True:
            stats = gql(f"query {{ {STATS} }}", "reading reconciliationStats")["reconciliationStats"]
            delta = {k: stats[k] - before[k] for k in ("processed", "ignored", "dead")}
            done = sum(delta.values())
            progress.update(done - progress.n)
            if done >= exp.final_events or time.monotonic() > deadline:
                return Expected(processed=delta["processed"], ignored=delta["ignored"], dead=delta["dead"],
                                duplicates=exp.duplicates, out_of_order=exp.out_of_order)
            time.sleep(0.2)


def _final_statuses(gql: GraphQLClient, debt_ids: list[str], user_ids: list[str]) -> list[str]:
    """Debt statuses and the Pro subscription statuses of `user_ids` (aliases, in chunks
    under the server's alias limit)."""
    parts = [f'd{i}: debt(id: "{d}") {{ status }}' for i, d in enumerate(debt_ids)]
    parts += [f'u{i}: user(id: "{u}") {{ proSubscription {{ status }} }}' for i, u in enumerate(user_ids)]
    data: dict[str, Any] = {}
    for start in range(0, len(parts), ALIAS_CHUNK):
        data.update(gql("query { " + " ".join(parts[start:start + ALIAS_CHUNK]) + " }", "reading the final statuses"))
    debts = [data[f"d{i}"]["status"] for i in range(len(debt_ids)) if data.get(f"d{i}")]
    subs = [
        data[f"u{i}"]["proSubscription"]["status"]
        for i in range(len(user_ids))
        if data.get(f"u{i}") and data[f"u{i}"].get("proSubscription")
    ]
    return debts + subs


def _summary(e: Expected, debts: int, subs: int) -> str:
    of_debts = f"/{debts}" if debts else ""
    of_subs = f"/{subs}" if subs else ""
    return (
        f"processed {e.processed}, ignored {e.ignored}, dead {e.dead}; "
        f"debts settled {e.settled}{of_debts}, Pro subscriptions active {e.active}{of_subs}"
    )


def register(app: typer.Typer) -> None:
    """Add `simulate` to the CLI."""
    app.command("simulate")(simulate)
