"""A DEAD event raises an alert: ERROR log, JSON POST to the alert webhook, Sentry."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.settings import Settings
from models.enums import WebhookEventStatus as S
from tasks.alerts import dead_event_alert, deliver
from tests.fixtures import stripe_events as se
from tests.fixtures.services import wait_until
from tests.tasks.inbox import deliver as deliver_event


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_dead_event_posts_a_json_alert(db: Settings, recorder: Recorder) -> None:
    settings = db.model_copy(update={"alert_webhook_url": f"{recorder.url}/hook"})
    evt = await deliver_event(se.event("transfer.created", {**se.transfer(), "amount": None}), settings)
    assert evt.status is S.DEAD
    await wait_until(lambda: recorder.requests, timeout=10, message="alert POST")
    path, body = recorder.requests[0]
    alert = json.loads(body)
    assert path == "/hook" and alert["event_id"] == evt.id and alert["status"] == "DEAD"
    assert "amount" in alert["reason"]


def test_alert_channels_fail_quietly_and_reach_sentry(recorder: Recorder) -> None:
    settings = Settings(
        alert_webhook_url="http://127.0.0.1:9/closed",  # nothing listens: logged, not raised
        sentry_dsn=f"http://publickey@127.0.0.1:{recorder.server_address[1]}/1",
    )
    deliver(settings, dead_event_alert("evt_sentry_1", "transfer.created", "test"))
    import sentry_sdk

    sentry_sdk.flush(timeout=5)
    envelopes = [_unzip(body) for path, body in recorder.requests if path == "/api/1/envelope/"]
    assert any(b"evt_sentry_1" in body for body in envelopes)


def _unzip(body: bytes) -> bytes:
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
