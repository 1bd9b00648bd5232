"""docs/benchmarks.md is regenerated section by section: each benchmark rewrites only the
block between its markers, and keeps its raw figures in bench/results/NAME.json."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"


def conditions() -> str:
    """One line saying on what the figures were measured: they depend on it."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), load average {' '.join(load)} "
        "when it started; the load generator shares the cores with the servers."
    )


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the `<!-- bench:NAME -->` block of docs/benchmarks.md (append it if new)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> None:
    """`python -m bench.report NAME TITLE COMMAND < output`: put a script's markdown output
    (bench/reconcile.py, bench/push_latency.py) into its section, with its command."""
    name, title, command = sys.argv[1:4]
    output = sys.stdin.read().strip()
    save(name, {"conditions": conditions(), "command": command, "output": output})
    write_section(name, f"### {title}\n\n{output}\n\nCommand: `{command}`  \nConditions: {conditions()}")


if __name__ == "__main__":
    main()
