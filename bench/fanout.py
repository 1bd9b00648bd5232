"""Fan-out: many websocket subscribers (`reconciliationFeed`, graphql-transport-ws) on one
API process; how long a committed change takes to reach each of them, and the API
process's memory with them connected.

Distributed by default: `trackit serve` + one `trackit worker` on PostgreSQL + the
benchmark's own Redis; the worker commits each change and publishes it, the API process
pushes it to every subscriber. Changes come from signed webhook events of a type no
handler takes (each becomes one RECEIVED -> IGNORED change), posted at a steady rate.
Latency is the subscriber's clock at receipt minus the change's `at` (set just before
the commit), on the same machine: it slightly overstates the delivery time.

The subscribers are bare-socket websocket clients (`FeedSocket`) that only timestamp and
keep each measured message at receipt, and check afterwards that every subscriber got
every change exactly once and in order: they share the 2 cores with the server, so a
heavier client would measure itself. Their CPU is reported beside the API's.

    .venv/bin/python -m bench.fanout --subscribers 1000 --changes 100 --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import uuid
import zlib
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from bench import processes as P
from bench.events import signature
from bench.report import command_line, conditions, save, table, write_section
from tests.fixtures.stripe_events import event

FEED = "subscription { reconciliationFeed { sequence at entityType entityId toStatus eventId } }"
OPERATION_ID = "1"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Offered as browsers and `websockets` do; used only if the server accepts it.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
FRAME_TEXT, FRAME_CLOSE, FRAME_PING, FRAME_PONG = 0x1, 0x8, 0x9, 0xA


class Tally:
    """This process's counts, copied to the shared counters now and then (a lock per
    message would cost more than reading the message)."""

    def __init__(self) -> None:
        self.ready = self.primed = self.delivered = 0
        self.failures: list[str] = []


class FeedSocket(asyncio.Protocol):
    """One graphql-transport-ws subscriber on a bare socket.

    The cheapest client that still reads every frame: at receipt it only takes the time
    and keeps the bytes of the measured messages; they are parsed and checked after the
    run. So the client's CPU, which shares the 2 cores with the server, stays small."""

    def __init__(self, host: str, path: str, token: str, marker: bytes, tally: Tally, deflate: bool) -> None:
        self.host, self.path, self.token, self.marker, self.tally = host, path, token, marker, tally
        self.extensions = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else ""
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.buffer = bytearray()
        self.upgraded = self.acked = self.primed = self.closing = False
        self.inflater: Any = None
        self.transport: asyncio.Transport | None = None
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # (receipt time, raw text) of each measured message, in order of arrival.
        self.received: list[tuple[float, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write((
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: graphql-transport-ws\r\n{self.extensions}\r\n"
        ).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.fail(f"connection lost: {exc!r}")

    def fail(self, why: str) -> None:
        self.tally.failures.append(why)
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(why))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded and not self._upgrade():
            return
        pos, end = 0, len(buffer)
        while end - pos >= 2:
            first, length = buffer[pos], buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2:pos + 10], "big"), 10
            if end - pos < head + length:
                break
            payload = bytes(buffer[pos + head:pos + head + length])
            pos += head + length
            opcode = first & 0x0F
            if not first & 0x80 or opcode == 0:
                self.fail("fragmented message (not expected from the server)")
            elif opcode == FRAME_TEXT:
                if first & 0x40:
                    payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                if self.marker in payload:
                    self.received.append((now, payload))
                    self.tally.delivered += 1
                else:
                    self._on_other(payload)
            elif opcode == FRAME_PING:
                self.send(FRAME_PONG, payload)
            elif opcode == FRAME_CLOSE and not self.closing:
                self.fail(f"closed by the server: {payload!r}")
        del buffer[:pos]

    def _upgrade(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status, *lines = self.buffer[:end].decode("latin-1").split("\r\n")
        del self.buffer[:end + 4]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        accept = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
        if " 101 " not in status + " " or headers.get("sec-websocket-accept") != accept \
                or headers.get("sec-websocket-protocol") != "graphql-transport-ws":
            self.fail(f"bad handshake: {status} {headers}")
            return False
        if "permessage-deflate" in headers.get("sec-websocket-extensions", ""):
            self.inflater = zlib.decompressobj(-15)
        self.upgraded = True
        self.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}})
        return True

    def _on_other(self, payload: bytes) -> None:
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "connection_ack" and not self.acked:
            self.acked = True
            self.send_json({"id": OPERATION_ID, "type": "subscribe", "payload": {"query": FEED}})
            self.subscribed.set_result(None)
        elif kind == "ping":
            self.send_json({"type": "pong"})
        elif kind == "next" and message.get("id") == OPERATION_ID:
            if not self.primed:
                self.primed = True
                self.tally.primed += 1
        elif kind != "pong":
            self.fail(f"unexpected message: {payload[:300]!r}")

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(FRAME_TEXT, json.dumps(message).encode())

    def send(self, opcode: int, payload: bytes) -> None:
        """A client frame: always masked (RFC 6455 section 5.3)."""
        assert self.transport is not None
        mask = os.urandom(4)
        length = len(payload)
        head = bytes([0x80 | opcode])
        if length < 126:
            head += bytes([0x80 | length])
        elif length < 1 << 16:
            head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + length.to_bytes(8, "big")
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.transport.write(head + mask + masked)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.send(FRAME_CLOSE, (1000).to_bytes(2, "big"))
            self.transport.close()


def check_deliveries(sockets: list[FeedSocket], measured: list[str]) -> dict[str, Any]:
    """Latencies, and whether each subscriber got each measured change once, in order."""
    wanted = set(measured)
    latencies: list[float] = []
    duplicates = out_of_order = missing = foreign = 0
    for sock in sockets:
        seen: set[str] = set()
        last = -1
        for received, raw in sock.received:
            message = json.loads(raw)
            change = message["payload"]["data"]["reconciliationFeed"]
            if message["type"] != "next" or message["id"] != OPERATION_ID or change["eventId"] not in wanted:
                foreign += 1
                continue
            if change["eventId"] in seen:
                duplicates += 1
                continue
            seen.add(change["eventId"])
            out_of_order += change["sequence"] <= last
            last = change["sequence"]
            latencies.append(received - datetime.fromisoformat(change["at"]).timestamp())
        missing += len(wanted - seen)
    return {"latencies": latencies, "duplicates": duplicates, "out_of_order": out_of_order,
            "missing": missing, "foreign": foreign}


def client_process(
    url: str, token: str, count: int, marker: str, measured: list[str], counters: dict[str, Synchronized],  # type: ignore[type-arg]
    stop: Any, results: Any, deflate: bool,
) -> None:
    """Hold `count` subscriptions open until `stop`; put what they received on `results`."""
    import uvloop

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        tally = Tally()
        gate = asyncio.Semaphore(50)  # connect a few at a time: the listen backlog is finite

        async def connect() -> FeedSocket:
            async with gate:
                _, sock = await loop.create_connection(
                    lambda: FeedSocket(f"{host}:{port}", parts.path, token, marker.encode(), tally, deflate), host, port
                )
                await asyncio.wait_for(sock.subscribed, 60)
                tally.ready += 1
                return sock

        connecting = asyncio.gather(*(connect() for _ in range(count)))
        sockets: list[FeedSocket] = []
        while not stop.is_set():
            await asyncio.sleep(0.05)
            if connecting.done() and not sockets:
                sockets = connecting.result()
            if tally.failures:
                raise RuntimeError(f"{len(tally.failures)} subscriber failures, first: {tally.failures[0]}")
            for name in ("ready", "primed", "delivered"):
                counters[name].value = getattr(tally, name)
        for sock in sockets:
            sock.close()
        return check_deliveries(sockets, measured)

    uvloop.install()
    try:
        results.put(asyncio.run(main()))
    except Exception as exc:  # the parent waits on `results`: tell it why
        results.put({"error": repr(exc)})


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
        marker = f"evt_fanout_{uuid.uuid4().hex}_"
        measured = [f"{marker}{i}" for i in range(args.changes)]
        ctx = mp.get_context("spawn")
        per_client = [args.subscribers // args.clients + (i < args.subscribers % args.clients) for i in range(args.clients)]
        counters = [{name: ctx.Value("i", 0) for name in ("ready", "primed", "delivered")} for _ in per_client]
        stop, results = ctx.Event(), ctx.Queue()
        url = server.base_url.replace("http", "ws") + "/graphql"
        clients = [
            ctx.Process(target=client_process,
                        args=(url, token, n, marker, measured, mine, stop, results, not args.no_compression))
            for n, mine in zip(per_client, counters)
        ]
        for c in clients:
            c.start()

        def total(name: str) -> int:
            return sum(int(mine[name].value) for mine in counters)

        try:
            wait_for(lambda: total("ready") >= args.subscribers, 180, f"{args.subscribers} subscriptions")
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                # A subscription streams a moment after its `subscribe`: warm up until a
                # change has reached every one of them; those changes are not measured.
                deadline = time.monotonic() + 120
                while total("primed") < args.subscribers:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {total('primed')} subscribers got a change")
                    post_event(http, event("customer.created", {"id": "cus_warm", "object": "customer"}), refused)
                    time.sleep(1.0)
                connected_rss = P.rss_mb(server.popen.pid)
                spy = P.profile(server, logs / "profile-fanout.collapsed", args.changes / args.rate) if args.profile else None
                interval = 1 / args.rate
                # CPU seconds, unlike latency, barely depend on what else the machine runs.
                cpu_before = P.cpu_seconds(server.popen.pid)
                client_cpu_before = sum(P.cpu_seconds(c.pid) for c in clients if c.pid is not None)
                started = time.monotonic()
                for i, event_id in enumerate(measured):
                    time.sleep(max(0.0, started + i * interval - time.monotonic()))
                    post_event(http, event("customer.created", {"id": f"cus_{i}", "object": "customer"}, id=event_id), refused)
            expected = args.changes * args.subscribers
            with contextlib.suppress(RuntimeError):
                wait_for(lambda: total("delivered") >= expected, 120, "every delivery")
            api_cpu = P.cpu_seconds(server.popen.pid) - cpu_before
            client_cpu = sum(P.cpu_seconds(c.pid) for c in clients if c.pid is not None) - client_cpu_before
            peak_rss = P.rss_mb(server.popen.pid)
            if spy is not None:
                spy.wait()
        finally:
            stop.set()
        received = [results.get(timeout=120) for _ in clients]
        for c in clients:
            c.join(30)
    errors = [r["error"] for r in received if "error" in r]
    if errors:
        raise RuntimeError(f"subscriber processes failed: {errors}")
    latencies = [latency for r in received for latency in r["latencies"]]
    delivered = len(latencies)
    return {
        "subscribers": args.subscribers, "changes": args.changes, "rate": args.rate,
        "mode": ("embedded (SQLite)" if args.embedded else "distributed (PostgreSQL + Redis, 1 worker)")
        + ("" if not args.no_compression else ", no permessage-deflate"),
        "deliveries": delivered, "expected": expected,
        **{k: sum(r[k] for r in received) for k in ("duplicates", "out_of_order", "missing", "foreign")},
        "p50_ms": 1000 * percentile(latencies, 0.50), "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
        "api_cpu_s": api_cpu, "api_cpu_us_per_delivery": 1e6 * api_cpu / max(1, delivered),
        "client_cpu_s": client_cpu, "client_cpu_us_per_delivery": 1e6 * client_cpu / max(1, delivered),
        "webhook_503": len(refused), "rss_idle_mb": idle_rss, "rss_connected_mb": connected_rss, "rss_peak_mb": peak_rss,
    }


def render(result: dict[str, Any], started: str) -> str:
    complete = result["deliveries"] == result["expected"] and not (
        result["duplicates"] or result["out_of_order"] or result["missing"] or result["foreign"])
    ok_latency = result["p99_ms"] <= 100 and complete
    ok_memory = max(result["rss_connected_mb"], result["rss_peak_mb"]) <= 150
    rows = [[
        result["mode"], result["subscribers"], f"{result['changes']} at {result['rate']}/s",
        f"{result['deliveries']:,} / {result['expected']:,}"
        + ("" if complete else f" (missing {result['missing']}, duplicate {result['duplicates']}, "
           f"out of order {result['out_of_order']}, foreign {result['foreign']})"),
        f"{result['p50_ms']:.1f} / **{result['p99_ms']:.1f}** / {result['max_ms']:.1f}",
        f"{result['rss_idle_mb']:.0f} / **{result['rss_connected_mb']:.0f}** / {result['rss_peak_mb']:.0f}",
        f"{result['api_cpu_us_per_delivery']:.0f}",
        f"{result['client_cpu_us_per_delivery']:.0f}",
    ]]
    return "\n\n".join([
        "### Fan-out: websocket subscribers of `reconciliationFeed` on one API process",
        table(["mode", "subscribers", "changes", "deliveries", "latency p50 / p99 / max ms",
               "API RSS MB idle / connected / after the run", "API CPU µs per delivery",
               "subscribers' CPU µs per delivery"], rows),
        f"Targets: p99 <= 100 ms with every change delivered once and in order to every subscriber: **{'met' if ok_latency else 'MISSED'}**; "
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
    parser.add_argument("--no-docs", action="store_true", help="write neither docs/benchmarks.md nor bench/results/")
    args = parser.parse_args()
    started = conditions()
    # Kept afterwards: the servers' logs explain a bad run.
    logs = Path(tempfile.mkdtemp(prefix="trackit-fanout-"))
    print(f"logs in {logs}", flush=True)
    result = run(args, logs)
    markdown = render(result, started)
    print(markdown)
    name = "fanout" + ("-embedded" if args.embedded else "") + ("-no-deflate" if args.no_compression else "")
    if not args.no_docs:
        save(name, {"conditions": started, **result})
        write_section(name, markdown)


if __name__ == "__main__":
    main()
