"""Fan-out: many websocket subscribers (`reconciliationFeed`, graphql-transport-ws) on one
API process; how long a committed change takes to reach each of them, and the API
process's memory with them connected.

Distributed by default: `trackit serve` + one `trackit worker` on PostgreSQL + the
benchmark's own Redis; the worker commits each change and publishes it, the API process
pushes it to every subscriber. Changes come from signed webhook events of a type no
handler takes (each becomes one RECEIVED -> IGNORED change), posted at a steady rate.
Latency is the subscriber's clock at receipt minus the change's `at` (set just before
the commit), on the same machine: it slightly overstates the delivery time.

    .venv/bin/python -m bench.fanout --subscribers 1000 --changes 100 --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx

from bench import processes as P
from bench.events import signature
from bench.report import command_line, conditions, save, table, write_section
from tests.fixtures.stripe_events import event

FEED = "subscription { reconciliationFeed { sequence at entityType entityId toStatus eventId } }"


async def _subscriber(
    url: str, token: str, measured: set[str], latencies: list[float], counters: dict[str, Synchronized],  # type: ignore[type-arg]
    stop: Any, gate: asyncio.Semaphore, compression: bool,
) -> None:
    from websockets.asyncio.client import connect

    async with gate:
        ws = await connect(
            url, subprotocols=["graphql-transport-ws"], max_queue=None, open_timeout=60,  # type: ignore[list-item]
            compression="deflate" if compression else None,
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        while json.loads(await ws.recv())["type"] != "connection_ack":
            pass
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": FEED}}))
    _add(counters["ready"])
    primed = False
    async with ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            received = time.time()
            message = json.loads(raw)
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            if message.get("type") != "next":
                continue
            change = message["payload"]["data"]["reconciliationFeed"]
            if not primed:
                primed = True
                _add(counters["primed"])
            if change["eventId"] in measured:
                latencies.append(received - datetime.fromisoformat(change["at"]).timestamp())
                _add(counters["delivered"])


def _add(counter: Synchronized) -> None:  # type: ignore[type-arg]
    with counter.get_lock():
        counter.value += 1


def client_process(
    url: str, token: str, count: int, measured: list[str], counters: dict[str, Synchronized],  # type: ignore[type-arg]
    stop: Any, results: Any, compression: bool,
) -> None:
    """Hold `count` subscriptions open until `stop`; put the latencies seen on `results`."""

    async def main() -> list[float]:
        latencies: list[float] = []
        gate = asyncio.Semaphore(50)  # connect a few at a time: the listen backlog is finite
        wanted = set(measured)
        tasks = [
            asyncio.create_task(_subscriber(url, token, wanted, latencies, counters, stop, gate, compression))
            for _ in range(count)
        ]
        while not stop.is_set():
            await asyncio.sleep(0.2)
            failed = [t for t in tasks if t.done() and t.exception()]
            if failed:
                raise RuntimeError(f"{len(failed)} subscribers failed") from failed[0].exception()
        await asyncio.gather(*tasks, return_exceptions=True)
        return latencies

    results.put(asyncio.run(main()))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def post_event(client: httpx.Client, evt: dict[str, Any], refused: list[int]) -> None:
    """Post as Stripe does: a 503 is retried (and counted), anything else must be 200."""
    body = json.dumps(evt, separators=(",", ":"))
    for _ in range(10):
        response = client.post(
            "/webhooks/stripe", content=body,
            headers={"Stripe-Signature": signature(body, P.SECRET, int(time.time())), "Content-Type": "application/json"},
        )
        if response.status_code != 503:
            response.raise_for_status()
            return
        refused.append(503)
    response.raise_for_status()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def run(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if args.embedded:
            env = P.trackit_env(f"sqlite://{logs}/fanout.db")
        else:
            env = P.trackit_env(stack.enter_context(P.fresh_postgres(logs)), stack.enter_context(P.own_redis(logs)))
        server = P.start_trackit_serve(env, logs, "serve")
        stack.callback(server.stop)
        if not args.embedded:
            worker = P.start_trackit_worker(env, logs)
            stack.callback(worker.stop)
        token = P.admin_token()
        refused: list[int] = []
        idle_rss = P.rss_mb(server.popen.pid)
        measured = [f"evt_fanout_{uuid.uuid4().hex}" for _ in range(args.changes)]
        ctx = mp.get_context("spawn")
        counters = {name: ctx.Value("i", 0) for name in ("ready", "primed", "delivered")}
        stop, results = ctx.Event(), ctx.Queue()
        per_client = [args.subscribers // args.clients + (i < args.subscribers % args.clients) for i in range(args.clients)]
        url = server.base_url.replace("http", "ws") + "/graphql"
        clients = [
            ctx.Process(target=client_process, args=(url, token, n, measured, counters, stop, results, not args.no_compression))
            for n in per_client
        ]
        for c in clients:
            c.start()
        try:
            wait_for(lambda: counters["ready"].value >= args.subscribers, 180, f"{args.subscribers} subscriptions")
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                # A subscription streams a moment after its `subscribe`: warm up until a
                # change has reached every one of them; those changes are not measured.
                deadline = time.monotonic() + 120
                while counters["primed"].value < args.subscribers:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {counters['primed'].value} subscribers got a change")
                    post_event(http, event("customer.created", {"id": "cus_warm", "object": "customer"}), refused)
                    time.sleep(1.0)
                connected_rss = P.rss_mb(server.popen.pid)
                spy = P.profile(server, logs / "profile-fanout.collapsed", args.changes / args.rate) if args.profile else None
                interval = 1 / args.rate
                # CPU seconds, unlike latency, barely depend on what else the machine runs.
                cpu_before = P.cpu_seconds(server.popen.pid)
                started = time.monotonic()
                for i, event_id in enumerate(measured):
                    time.sleep(max(0.0, started + i * interval - time.monotonic()))
                    post_event(http, event("customer.created", {"id": f"cus_{i}", "object": "customer"}, id=event_id), refused)
            expected = args.changes * args.subscribers
            with contextlib.suppress(RuntimeError):
                wait_for(lambda: counters["delivered"].value >= expected, 120, "every delivery")
            api_cpu = P.cpu_seconds(server.popen.pid) - cpu_before
            peak_rss = P.rss_mb(server.popen.pid)
            if spy is not None:
                spy.wait()
        finally:
            stop.set()
        latencies: list[float] = []
        for _ in clients:
            latencies += results.get(timeout=120)
        for c in clients:
            c.join(30)
    return {
        "subscribers": args.subscribers, "changes": args.changes, "rate": args.rate,
        "mode": ("embedded (SQLite)" if args.embedded else "distributed (PostgreSQL + Redis, 1 worker)")
        + ("" if not args.no_compression else ", no permessage-deflate"),
        "deliveries": len(latencies), "expected": args.changes * args.subscribers,
        "p50_ms": 1000 * percentile(latencies, 0.50), "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
        "api_cpu_s": api_cpu, "api_cpu_us_per_delivery": 1e6 * api_cpu / max(1, len(latencies)),
        "webhook_503": len(refused), "rss_idle_mb": idle_rss, "rss_connected_mb": connected_rss, "rss_peak_mb": peak_rss,
    }


def render(result: dict[str, Any], started: str) -> str:
    ok_latency = result["p99_ms"] <= 100 and result["deliveries"] == result["expected"]
    ok_memory = max(result["rss_connected_mb"], result["rss_peak_mb"]) <= 150
    rows = [[
        result["mode"], result["subscribers"], f"{result['changes']} at {result['rate']}/s",
        f"{result['deliveries']:,} / {result['expected']:,}",
        f"{result['p50_ms']:.1f} / **{result['p99_ms']:.1f}** / {result['max_ms']:.1f}",
        f"{result['rss_idle_mb']:.0f} / **{result['rss_connected_mb']:.0f}** / {result['rss_peak_mb']:.0f}",
        f"{result['api_cpu_us_per_delivery']:.0f}",
    ]]
    return "\n\n".join([
        "### Fan-out: websocket subscribers of `reconciliationFeed` on one API process",
        table(["mode", "subscribers", "changes", "deliveries", "latency p50 / p99 / max ms",
               "API RSS MB idle / connected / after the run", "API CPU µs per delivery"], rows),
        f"Targets: p99 <= 100 ms with every change delivered: **{'met' if ok_latency else 'MISSED'}**; "
        f"API RSS <= 150 MB with them connected: **{'met' if ok_memory else 'MISSED'}**.",
        f"Command: `{command_line()}`  \nConditions: {started}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="changes per second")
    parser.add_argument("--clients", type=int, default=2, help="subscriber processes")
    parser.add_argument("--embedded", action="store_true", help="SQLite, one process")
    parser.add_argument("--no-compression", action="store_true",
                        help="subscribers do not offer permessage-deflate (browsers and `websockets` do)")
    parser.add_argument("--profile", action="store_true", help="py-spy the API process while changes flow")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    started = conditions()
    # Kept afterwards: the servers' logs explain a bad run.
    logs = Path(tempfile.mkdtemp(prefix="trackit-fanout-"))
    print(f"logs in {logs}", flush=True)
    result = run(args, logs)
    markdown = render(result, started)
    print(markdown)
    name = "fanout" + ("-embedded" if args.embedded else "") + ("-no-deflate" if args.no_compression else "")
    save(name, {"conditions": started, **result})
    if not args.no_docs:
        write_section(name, markdown)


if __name__ == "__main__":
    main()
