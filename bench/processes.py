"""Children a benchmark starts and always stops: servers, its own Redis, fresh databases.

Never the shared services' state: a benchmark creates its own PostgreSQL database and
runs its own `redis-server` on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.fixtures.services import PG_ADMIN_URL, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "whsec_bench_0123456789abcdefghij"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef"


@dataclass
class Child:
    """One started process; `stop()` is idempotent."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start(name: str, args: list[str], env: dict[str, str], logs: Path, port: int = 0) -> Child:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return Child(name, popen, log_path, port)


def wait_healthy(child: Child, path: str = "/healthz", timeout: float = 60.0) -> Child:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n{child.log()[-3000:]}")
        try:
            if httpx.get(child.base_url + path, timeout=1).status_code == 200:
                return child
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} not healthy after {timeout}s:\n{child.log()[-3000:]}")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKIT_", "BENCH_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def trackit_env(database_url: str, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a production-like `trackit` process for the benchmarks."""
    env = base_env()
    env.update(
        TRACKIT_ENV="production",
        TRACKIT_DATABASE_URL=database_url,
        TRACKIT_STRIPE_WEBHOOK_SECRETS=SECRET,
        TRACKIT_JWT_SECRET=JWT_SECRET,
        TRACKIT_REDIS_NAMESPACE=f"trackit-bench-{uuid.uuid4().hex[:8]}",
        TRACKIT_LOG_LEVEL="WARNING",
    )
    if redis_url:
        env["TRACKIT_REDIS_URL"] = redis_url
    env.update(extra)
    return env


def start_trackit_serve(env: dict[str, str], logs: Path, name: str = "serve") -> Child:
    port = free_port()
    child = start(name, [str(BIN / "trackit"), "serve", "--port", str(port)], env, logs, port)
    return wait_healthy(child)


def start_trackit_worker(env: dict[str, str], logs: Path, name: str = "worker") -> Child:
    return start(name, [str(BIN / "trackit"), "worker"], env, logs)


def start_uvicorn(app: str, env: dict[str, str], logs: Path, name: str) -> Child:
    """`app` under the same uvicorn settings as `trackit serve` (uvloop, httptools, 1 process)."""
    port = free_port()
    args = [
        str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
        "--http", "httptools", "--log-level", "warning", "--no-access-log",
    ]
    return wait_healthy(start(name, args, env, logs, port))


@contextlib.contextmanager
def own_redis(logs: Path) -> Iterator[str]:
    """A private `redis-server` on a free port (never the shared one); yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    child = start(
        f"redis-{port}",
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        base_env(), logs, port,
    )
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        child.stop()


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_postgres(logs: Path) -> Iterator[str]:
    """A new, migrated PostgreSQL database (dropped afterwards); yields its postgres:// URL."""
    name = f"trackit_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = _pg_url(name)
        subprocess.run(
            [str(BIN / "trackit"), "migrate"], env=trackit_env(url), cwd=ROOT, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_count(url: str, sql: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def count_rows(database_url: str, sql: str = "SELECT count(*) FROM webhook_event") -> int:
    """A count on the benchmark's database (PostgreSQL or SQLite)."""
    if database_url.startswith("sqlite"):
        import sqlite3

        path = database_url.split("://", 1)[1].split("?", 1)[0]
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    return asyncio.run(_pg_count(database_url, sql))


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def admin_token(hours: float = 12.0) -> str:
    """A bearer token for an operator, signed with the benchmarks' JWT secret."""
    import jwt

    exp = int(time.time() + hours * 3600)
    return str(jwt.encode({"sub": "bench", "role": "admin", "exp": exp}, JWT_SECRET, algorithm="HS256"))


def profile(child: Child, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Sample `child` with py-spy for `seconds` into collapsed stacks at `out`."""
    return subprocess.Popen(
        [str(BIN / "py-spy"), "record", "--pid", str(child.popen.pid), "--duration", str(max(1, int(seconds))),
         "--rate", "100", "--threads", "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
