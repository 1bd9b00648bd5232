"""Webhook-to-subscriber latency: from the start of the POST of a signed `transfer.created`
to the moment a `debtStatusChanged` subscriber (graphql-transport-ws) receives the debt
SETTLED, at fixed open-loop rates, after a short unmeasured warm-up.

    .venv/bin/python -m bench.push_latency [--rates 50,100,200] [--seconds 5] [--modes distributed,embedded]

Distributed: 1 `trackit serve` + 1 `trackit worker` on a fresh PostgreSQL database and a
private redis-server. Embedded: 1 `trackit serve` on a fresh SQLite file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from bench.events import signature
from bench.processes import (
    JWT_SECRET,
    SECRET,
    Child,
    fresh_postgres,
    own_redis,
    start_trackit_serve,
    start_trackit_worker,
    trackit_env,
)
from bench.report import command_line, conditions, save, table, write_section
from tests.fixtures.stripe_events import body_of, event, transfer, unique_id

AMOUNT = 1100
BATCH = 20  # mutations per request (the schema allows 20 aliases)
WATCH = "subscription { debtStatusChanged { id status updatedAt } }"


class Poster:
    """A minimal keep-alive HTTP/1.1 client for the webhook POSTs.

    httpx costs 1-2 ms of CPU per request in this process, which also parses every push:
    at 100-200 posts/s on a shared 2-core machine that queued the sends themselves for
    seconds (against the floor app: httpx p99 206 ms at 100/s and 3.6 s at 200/s, this
    client 6 ms and 14 ms), so the bench measured its own client, not the service."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST `body` on an idle connection (or a new one); the response status."""
        while self._idle:
            try:
                return await self._post(self._idle.pop(), path, body, headers)
            except (asyncio.IncompleteReadError, ConnectionError):
                continue  # the server closed it while idle (keep-alive timeout): next one
        return await self._post(await asyncio.open_connection(self.host, self.port), path, body, headers)

    async def _post(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, body: bytes,
        headers: dict[str, str],
    ) -> int:
        reader, writer = connection
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status, length, close = int(lines[0].split(" ", 2)[1]), 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        await reader.readexactly(length)
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def admin_token() -> str:
    return jwt.encode({"sub": "bench", "role": "admin", "exp": int(time.time()) + 3600}, JWT_SECRET, "HS256")


async def graphql(client: httpx.AsyncClient, base: str, query: str) -> dict[str, Any]:
    response = await client.post(
        f"{base}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {admin_token()}"}
    )
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return dict(body["data"])


async def pending_settlements(base: str, count: int) -> dict[str, str]:
    """`count` debts PENDING_SETTLEMENT, each with its own transfer id: {transfer: debt id}."""
    async with httpx.AsyncClient(timeout=60) as client:
        users = []
        for who in ("debtor", "creditor"):
            made = await graphql(client, base, f'mutation {{ createUser(email: "{unique_id(who)}@bench.example", '
                                               f'name: "{who}") {{ id }} }}')
            users.append(made["createUser"]["id"])
        group = await graphql(client, base, f'mutation {{ createGroup(name: "bench", memberIds: {users}) {{ id }} }}'
                              .replace("'", '"'))
        group_id = group["createGroup"]["id"]
        debts: list[str] = []
        while len(debts) < count:
            n = min(BATCH, count - len(debts))
            fields = " ".join(
                f'd{i}: recordDebt(groupId: "{group_id}", debtorId: "{users[0]}", creditorId: "{users[1]}", '
                f"amountCents: {AMOUNT}) {{ id }}" for i in range(n)
            )
            made = await graphql(client, base, f"mutation {{ {fields} }}")
            debts += [made[f"d{i}"]["id"] for i in range(n)]
        transfers = {unique_id("tr"): debt for debt in debts}
        pairs = list(transfers.items())
        for start in range(0, len(pairs), BATCH):
            fields = " ".join(
                f's{i}: registerSettlement(debtId: "{debt}", transferId: "{tr}") {{ status }}'
                for i, (tr, debt) in enumerate(pairs[start : start + BATCH])
            )
            await graphql(client, base, f"mutation {{ {fields} }}")
        return transfers


async def measure(base: str, transfers: dict[str, str], rate: int) -> tuple[list[float], list[float]]:
    """Post one event per transfer at `rate`/s. Latencies in ms: from the POST to the
    SETTLED push, and from the debt's update (just before its commit) to the push."""
    now = int(time.time())
    bodies = {}
    for tr in transfers:
        body = body_of(event("transfer.created", transfer(id=tr, amount=AMOUNT)))
        bodies[tr] = (body, signature(body.decode(), SECRET, now))
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    after_commit: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    wanted = {debt: tr for tr, debt in transfers.items()}
    ws = WebsocketsTransport(
        url=base.replace("http://", "ws://") + "/graphql", init_payload={"Authorization": f"Bearer {admin_token()}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    poster = Poster(base)
    async with Client(transport=ws) as session, httpx.AsyncClient(timeout=60) as http:

        async def listen() -> None:
            async for item in session.subscribe(GraphQLRequest(WATCH)):
                change = item["debtStatusChanged"]
                if change["status"] == "SETTLED" and change["id"] in wanted:
                    received[wanted[change["id"]]] = loop.time()
                    updated = datetime.fromisoformat(change["updatedAt"]).timestamp()
                    after_commit[wanted[change["id"]]] = (time.time() - updated) * 1000
                    if len(received) == len(transfers):
                        done.set()

        async def post(tr: str) -> None:
            body, sig = bodies[tr]
            sent[tr] = loop.time()
            status = await poster.post("/webhooks/stripe", body,
                                       {"Stripe-Signature": sig, "Content-Type": "application/json"})
            if status != 200:
                raise RuntimeError(f"webhook answered {status}")

        listener = asyncio.ensure_future(listen())
        await subscribed(http, base)
        start, posts = loop.time(), []
        for i, tr in enumerate(transfers):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.ensure_future(post(tr)))
        await asyncio.gather(*posts)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=60)
        listener.cancel()
        with contextlib.suppress(BaseException):
            await listener
        poster.close()
    missing = len(transfers) - len(received)
    if missing:
        raise RuntimeError(f"{missing} of {len(transfers)} SETTLED pushes never arrived")
    return [(received[tr] - sent[tr]) * 1000 for tr in transfers], [after_commit[tr] for tr in transfers]


async def subscribed(http: httpx.AsyncClient, base: str, timeout: float = 10) -> None:
    """Wait until the server counts our subscription, so no event precedes it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (await http.get(f"{base}/metrics")).text
        if any(line.startswith("trackit_websocket_subscribers ") and float(line.split()[1]) >= 1
               for line in text.splitlines()):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("the subscription never reached the server")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def service(mode: str, logs: Path) -> Iterator[Child]:
    if mode == "embedded":
        env = trackit_env(f"sqlite://{logs / 'bench.db'}")
        serve = start_trackit_serve(env, logs, "serve-embedded")
        try:
            yield serve
        finally:
            serve.stop()
        return
    with fresh_postgres(logs) as url, own_redis(logs) as redis_url:
        env = trackit_env(url, redis_url)
        worker = start_trackit_worker(env, logs)
        serve = start_trackit_serve(env, logs)
        try:
            yield serve
        finally:
            serve.stop()
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each rate")
    parser.add_argument("--modes", default="distributed,embedded")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured events first")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    started, rows, raw = conditions(), [], {}
    logs = Path(tempfile.mkdtemp(prefix="trackit-push-"))
    for mode in args.modes.split(","):
        with service(mode, logs) as serve:
            if args.warmup > 0:
                # A fresh worker's first batches pay one-off costs (statements prepared
                # per connection, first imports of handler paths): steady state is what
                # a running service shows, so those events are not measured.
                warm = asyncio.run(pending_settlements(serve.base_url, int(rates[0] * args.warmup)))
                asyncio.run(measure(serve.base_url, warm, rates[0]))
            for rate in rates:
                count = int(rate * args.seconds)
                transfers = asyncio.run(pending_settlements(serve.base_url, count))
                latencies, pushes = asyncio.run(measure(serve.base_url, transfers, rate))
                raw[f"{mode}@{rate}"] = {"webhook_to_push": latencies, "commit_to_push": pushes}
                rows.append([
                    mode, rate, count, f"{statistics.median(latencies):.1f}",
                    f"{percentile(latencies, 0.99):.1f}", f"{max(latencies):.1f}",
                    f"{statistics.median(pushes):.1f}", f"{percentile(pushes, 0.99):.1f}",
                ])
    markdown = (
        "## Webhook-to-subscriber latency\n\n"
        f"`{command_line()}`\n\n{started}\n\n"
        "From the start of the webhook POST to the `debtStatusChanged` push of SETTLED "
        "(graphql-transport-ws). Distributed: 1 serve + 1 worker, PostgreSQL + Redis. "
        "Targets at 100/s: p50 <= 15 ms, p99 <= 50 ms.\n\n"
        + "The last two columns isolate the push: from the debt's update, just before its "
        "commit, to the subscriber.\n\n"
        + table(["mode", "events/s", "events", "p50 ms", "p99 ms", "max ms",
                 "commit->push p50", "commit->push p99"], rows)
    )
    print(markdown)
    save("push_latency", {"conditions": started, "rows": rows, "latencies_ms": raw})
    write_section("push_latency", markdown)


if __name__ == "__main__":
    main()
