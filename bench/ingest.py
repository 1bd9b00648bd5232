"""Ingest: signed, unique events accepted per second by one server process.

Compares, in the same run, (a) the floor (bench/floor_app.py), (b) the textbook handler
(bench/textbook_app.py), (c) `trackit serve` on PostgreSQL + Redis (no worker running:
this measures ingest; the messages wait in the benchmark's own Redis) and (d) `trackit
serve` in embedded mode (SQLite, its in-process worker running, as deployed). All under
the uvicorn settings of `trackit serve`; the load generator is wrk with pre-signed
events (bench/wrk_post.lua). PostgreSQL targets are interleaved round by round so the
machine's noise falls on all of them alike.

    .venv/bin/python -m bench.ingest --runs 5 --duration 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import processes as P
from bench.events import write_signed
from bench.report import command_line, conditions, save, table, write_section

LUA = Path(__file__).with_name("wrk_post.lua")


@dataclass
class Target:
    name: str
    label: str
    database_url: str | None = None
    pid: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs) if self.runs else 0.0


def wrk(url: str, events: Path, args: argparse.Namespace, duration: int) -> dict[str, Any]:
    """One wrk run; the figures its Lua `done` prints."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    out = subprocess.run(
        [exe, f"-t{args.threads}", f"-c{args.connections}", f"-d{int(duration)}s", "--timeout", "10s",
         "-s", str(LUA), f"{url}/webhooks/stripe", "--", str(events), str(args.threads)],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    return dict(json.loads(line.removeprefix("WRK_JSON ")))


def measure(target: Target, url: str, work: Path, args: argparse.Namespace, warmup: bool = False) -> None:
    """Post fresh signed events at `url`; record requests/s and, with a database, stored rows/s."""
    events = work / f"{target.name}.events"
    mean_size = write_signed(events, args.events, P.SECRET)
    before = P.count_rows(target.database_url) if target.database_url else 0
    cpu_before = P.cpu_seconds(target.pid)
    result = wrk(url, events, args, 1 if warmup else args.duration)
    if warmup:
        return
    seconds = result["duration_us"] / 1e6
    # Below 100 % the server waits on something (database, pool, GIL) rather than computing.
    result["server_cpu"] = (P.cpu_seconds(target.pid) - cpu_before) / seconds
    result["requests_per_s"] = result["requests"] / seconds
    if target.database_url:
        result["stored"] = P.count_rows(target.database_url) - before
        result["stored_per_s"] = result["stored"] / seconds
    else:
        result["stored_per_s"] = result["requests_per_s"]
    result["mean_body_bytes"] = round(mean_size)
    target.runs.append(result)
    print(f"  {target.name:16} {result['stored_per_s']:9.0f}/s  p99 {result['p99_us'] / 1000:.1f} ms"
          f"  server CPU {100 * result['server_cpu']:.0f} %  non-200 {result['non200']}  wrapped {result['wrapped']}", flush=True)


def postgres_rounds(args: argparse.Namespace, work: Path, logs: Path) -> list[Target]:
    floor = Target("floor", "(a) floor: Starlette route that reads the body")
    textbook = Target("textbook", "(b) textbook: construct_event + 1 asyncpg INSERT (PostgreSQL)")
    trackit = Target("trackit-pg", "trackit serve, PostgreSQL + Redis (no worker)")
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(P.own_redis(logs))
        textbook.database_url = stack.enter_context(P.fresh_postgres(logs))
        trackit.database_url = stack.enter_context(P.fresh_postgres(logs))
        env = P.base_env()
        servers = {
            "floor": P.start_uvicorn("bench.floor_app:app", env, logs, "floor"),
            "textbook": P.start_uvicorn(
                "bench.textbook_app:app",
                {**env, "BENCH_DATABASE_URL": textbook.database_url.replace("postgres://", "postgresql://"),
                 "BENCH_WEBHOOK_SECRET": P.SECRET}, logs, "textbook"),
            "trackit-pg": P.start_trackit_serve(P.trackit_env(trackit.database_url, redis_url), logs, "serve-pg"),
        }
        for child in servers.values():
            stack.callback(child.stop)
        targets = [floor, textbook, trackit]
        for t in targets:
            t.pid = servers[t.name].popen.pid
        for t in targets:
            measure(t, servers[t.name].base_url, work, args, warmup=True)
        for round_no in range(1, args.runs + 1):
            print(f"round {round_no}/{args.runs}", flush=True)
            for t in targets:
                measure(t, servers[t.name].base_url, work, args)
    return targets


def sqlite_runs(args: argparse.Namespace, work: Path, logs: Path) -> Target:
    """Embedded mode: a fresh database and server per run, so one run's backlog, which the
    in-process worker drains, never spills into the next."""
    target = Target("trackit-sqlite", "trackit serve, embedded (SQLite, in-process worker)")
    for run in range(1, args.runs + 1):
        target.database_url = f"sqlite://{work}/embedded-{run}.db"
        child = P.start_trackit_serve(P.trackit_env(target.database_url), logs, f"serve-sqlite-{run}")
        target.pid = child.popen.pid
        try:
            measure(target, child.base_url, work, args, warmup=True)
            measure(target, child.base_url, work, args)
        finally:
            child.stop()
    return target


def render(targets: list[Target], args: argparse.Namespace, started: str) -> str:
    by = {t.name: t for t in targets}
    floor, textbook = by["floor"].median("stored_per_s"), by["textbook"].median("stored_per_s")
    rows = []
    for t in targets:
        rate = t.median("stored_per_s")
        rows.append([
            t.label, f"**{rate:,.0f}**", ", ".join(f"{r['stored_per_s']:,.0f}" for r in t.runs),
            f"{t.median('p50_us') / 1000:.1f} / {t.median('p99_us') / 1000:.1f}",
            f"{100 * t.median('server_cpu'):.0f} %",
            f"{100 * rate / floor:.0f} %" if floor else "-",
            f"{rate / textbook:.1f}x" if textbook else "-",
            sum(r["non200"] for r in t.runs),
        ])
    pg = by["trackit-pg"].median("stored_per_s")
    if not (floor and textbook):
        return "ingest: a baseline measured nothing; see the logs"
    verdict = (
        f"Targets on PostgreSQL + Redis: >= 3x textbook: **{pg / textbook:.1f}x** "
        f"({'met' if pg >= 3 * textbook else 'MISSED'}); >= 15 % of the floor: "
        f"**{100 * pg / floor:.0f} %** ({'met' if pg >= 0.15 * floor else 'MISSED'})."
    )
    body = by["trackit-pg"].runs[0]["mean_body_bytes"] if by["trackit-pg"].runs else 0
    return "\n\n".join([
        "### Ingest: signed unique events accepted per second, one server process",
        table(["server", "median events/s", "runs", "latency p50 / p99 ms (median)", "server CPU", "of floor", "of textbook", "non-200"], rows),
        verdict,
        f"Command: `{command_line()}`  \n"
        f"Load: wrk, {args.threads} thread(s), {args.connections} connections, {args.duration} s a run, "
        f"{args.runs} runs (medians); each event unique and signed (mean body {body} bytes: a mix of "
        "invoice.paid, payment_intent.succeeded, transfer.created). Rates count rows stored (for the "
        "floor, requests answered).  \n"
        f"Conditions: {started}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the machine has 2 cores)")
    parser.add_argument("--events", type=int, default=40_000, help="unique events per run")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()
    started = conditions()
    with tempfile.TemporaryDirectory(prefix="trackit-bench-") as tmp:
        work, logs = Path(tmp), Path(tmp) / "logs"
        targets = postgres_rounds(args, work, logs)
        if not args.no_sqlite:
            targets.append(sqlite_runs(args, work, logs))
    markdown = render(targets, args, started)
    print(markdown)
    save("ingest", {"conditions": started, "args": vars(args), "targets": {t.name: t.runs for t in targets}})
    if not args.no_docs:
        write_section("ingest", markdown)


if __name__ == "__main__":
    main()
