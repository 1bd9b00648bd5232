"""Where an ingest request's time goes: py-spy samples `trackit serve` (PostgreSQL +
Redis, no worker) under the same wrk load as bench/ingest.py.

    .venv/bin/python -m bench.profile_ingest --duration 10 [--sqlite]

Prints the functions holding the most samples (inclusive and own), per thread, and
keeps the collapsed stacks (flamegraph input) in bench/results/."""

from __future__ import annotations

import argparse
import collections
import contextlib
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench import processes as P
from bench.events import write_signed
from bench.ingest import wrk
from bench.report import RESULTS

PY_SPY = str(Path(sys.executable).parent / "py-spy")


def summarise(collapsed: Path, top: int) -> str:
    """Inclusive and own sample shares per function, from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
        own[frames[-1]] += count
    out = [f"{total} samples"]
    out += ["threads:"] + [f"  {100 * n / total:5.1f} %  {name}" for name, n in threads.most_common()]
    out += ["inclusive:"] + [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    out += ["own:"] + [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sqlite", action="store_true", help="embedded mode instead of PostgreSQL + Redis")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "sqlite" if args.sqlite else "pg"
    collapsed = RESULTS / f"profile-ingest-{name}.collapsed"
    with tempfile.TemporaryDirectory(prefix="trackit-prof-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        if args.sqlite:
            env = P.trackit_env(f"sqlite://{work}/prof.db")
        else:
            env = P.trackit_env(stack.enter_context(P.fresh_postgres(work)), stack.enter_context(P.own_redis(work)))
        server = P.start_trackit_serve(env, work, "serve")
        stack.callback(server.stop)
        events = work / "events"
        write_signed(events, args.events, P.SECRET)
        spy = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(server.popen.pid), "--duration", str(args.duration),
             "--rate", "200", "--threads", "--nonblocking", "--format", "raw", "--output", str(collapsed)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        result: dict[str, object] = {}
        load = threading.Thread(target=lambda: result.update(wrk(server.base_url, events, args, args.duration)))
        load.start()
        spy.wait()
        load.join()
    print(f"wrk: {result}")
    print(summarise(collapsed, args.top))


if __name__ == "__main__":
    main()
