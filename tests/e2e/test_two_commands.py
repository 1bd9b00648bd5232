"""The README's two commands from a scratch copy of the tree with no virtualenv: `./run
serve` builds `.venv/` from `uv.lock`, generates development secrets, prints what an
operator needs and serves signed webhooks; `./run test` runs mypy and pytest."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.fixtures.services import free_port
from tests.fixtures.stripe_events import body_of, event, sign

ROOT = Path(__file__).resolve().parents[2]


def scratch_clone(tmp: Path) -> Path:
    """What a clone holds: tracked and untracked files git does not ignore (the work tree
    may be ahead of HEAD), beside the shared contract directory as in the real layout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    clone = tmp / "main"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    (tmp / "shared").symlink_to(ROOT.parent / "shared")
    assert not (clone / ".venv").exists() and not (clone / ".trackit-secrets.json").exists()
    return clone


def fresh_env() -> dict[str, str]:
    """The environment of a new shell: nothing of this suite's configuration or venv."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("TRACKIT_", "PYTEST", "VIRTUAL_ENV")) and k not in ("PYTHONPATH", "SENTRY_DSN")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def test_run_serve_then_run_test_from_a_scratch_clone(tmp_path: Path) -> None:
    clone = scratch_clone(tmp_path)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        serve = subprocess.Popen(
            ["./run", "serve", "--port", str(port)], cwd=clone, env=fresh_env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # the first run builds the virtualenv
        with httpx.Client(timeout=5, verify=False) as http:
            while True:
                assert serve.poll() is None, f"./run serve exited:\n{log_path.read_text()}"
                try:
                    if http.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"not healthy:\n{log_path.read_text()}"
                time.sleep(0.2)

            printed = log_path.read_text()
            secret = orjson.loads((clone / ".trackit-secrets.json").read_bytes())["stripe_webhook_secrets"]
            assert f"secret:    {secret}" in printed
            assert f"POST {base}/webhooks/stripe" in printed and f"{base}/dashboard" in printed
            token = re.search(r"admin token: (\S+)", printed)
            assert token and token.group(1).count(".") == 2, printed
            assert (clone / ".venv" / "bin" / "trackit").exists()

            evt = event("customer.created", {"id": "cus_fresh", "object": "customer"})
            body = body_of(evt)
            accepted = http.post(f"{base}/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, secret)})
            assert accepted.status_code == 200 and accepted.json() == {"received": True, "duplicate": False}
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)

    # The test command, on a small selection: the whole suite is what runs this test.
    tested = subprocess.run(
        ["./run", "test", "tests/api/test_webhook_smoke.py", "-k", "embedded", "-p", "no:cacheprovider", "-q"],
        cwd=clone, env=fresh_env(), capture_output=True, text=True, timeout=900,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Success: no issues found" in tested.stdout, "mypy ran first"
    assert re.search(r"\b1 passed\b", tested.stdout), tested.stdout
