"""SPEC section 4, row by row, against a real `trackit serve` in each mode: what Stripe
gets back, what is stored, and what `/metrics` counts."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from api.settings import Settings
from tests.conftest import MODES, WEBHOOK_SECRET, make_settings
from tests.fixtures.processes import HTTP, Proc, Server, start_server, start_worker
from tests.fixtures.services import Databases, db_rows, require_services, wait_until
from tests.fixtures.stripe_events import body_of, event, sign

NEXT_SECRET = "whsec_suite_rotated_9876543210"
TOLERANCE_S = 120
MAX_BYTES = 64 * 1024
REJECTED = "trackit_webhook_requests_rejected_total"


@dataclass
class Ingress:
    server: Server
    settings: Settings

    async def stored(self, event_id: str) -> list[dict[str, object]]:
        return await db_rows(
            self.settings.database_url, "SELECT id, status, payload FROM webhook_event WHERE id = $1", event_id
        )

    def rejected(self, reason: str) -> float:
        return self.server.metric(REJECTED, reason=reason)


@pytest.fixture(scope="module", params=MODES)
async def ingress(
    request: pytest.FixtureRequest, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ingress]:
    """One service per mode for the whole module: two secrets (rotation), a tolerance of
    120 s and a 64 KiB limit, so the settings are seen to be honoured."""
    distributed = request.param == "distributed"
    if distributed:
        require_services()
    url = await (databases.postgres_url() if distributed else databases.sqlite_url())
    settings = make_settings(
        url, distributed, stripe_webhook_secrets=[WEBHOOK_SECRET, NEXT_SECRET],
        webhook_tolerance_s=TOLERANCE_S, webhook_max_bytes=MAX_BYTES,
    )
    tmp = tmp_path_factory.mktemp(f"ingress-{request.param}")
    procs: list[Proc] = []
    try:
        if distributed:
            procs.append(start_worker(settings, tmp))
        procs.append(start_server(settings, tmp))
        yield Ingress(server=procs[-1], settings=settings)  # type: ignore[arg-type]
    finally:
        for proc in reversed(procs):
            proc.kill()


def ignored_event(**extra: object) -> dict[str, object]:
    """An event type no handler takes: it ends IGNORED whatever the engine registers."""
    return event("customer.created", {"id": f"cus_{uuid.uuid4().hex[:10]}", "object": "customer"}, **extra)


def signed(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    return {"Stripe-Signature": sign(body, secret, timestamp), "Content-Type": "application/json"}


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["error"], str) and response.json()["error"]


async def test_new_event_is_stored_with_its_raw_body_and_reconciled(ingress: Ingress) -> None:
    evt = ignored_event()
    body = body_of(evt)
    response = ingress.server.post_raw(body, signed(body))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"received": True, "duplicate": False}
    rows = await ingress.stored(str(evt["id"]))
    assert len(rows) == 1 and rows[0]["payload"] == body.decode()

    async def ignored() -> bool:
        return (await ingress.stored(str(evt["id"])))[0]["status"] == "IGNORED"

    await wait_until(ignored, timeout=20, message="the worker marks an unhandled type IGNORED")


async def test_redelivered_event_is_acknowledged_as_duplicate_and_stored_once(ingress: Ingress) -> None:
    evt = ignored_event()
    duplicates = ingress.server.metric("trackit_webhook_events_duplicate_total")
    assert ingress.server.post_event(evt).json() == {"received": True, "duplicate": False}
    # Stripe re-signs a redelivery with a new timestamp; the event id is what matters.
    again = ingress.server.post_raw(body_of(evt), signed(body_of(evt), timestamp=int(time.time()) + 1))
    assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
    assert len(await ingress.stored(str(evt["id"]))) == 1
    assert ingress.server.metric("trackit_webhook_events_duplicate_total") == duplicates + 1


REJECTIONS = {
    "missing signature": ("no_signature", lambda body: {"Content-Type": "application/json"}),
    "empty signature": ("no_signature", lambda body: {"Stripe-Signature": ""}),
    "signed with an unknown secret": ("bad_signature", lambda body: signed(body, "whsec_someone_else")),
    "malformed header": ("bad_signature", lambda body: {"Stripe-Signature": "garbage"}),
    "no v1 signature": ("bad_signature", lambda body: {"Stripe-Signature": f"t={int(time.time())},v0=abc"}),
    "stale timestamp": (
        "stale_timestamp", lambda body: signed(body, timestamp=int(time.time()) - TOLERANCE_S - 30)
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
async def test_request_without_a_valid_signature_is_refused_and_stores_nothing(
    ingress: Ingress, case: str
) -> None:
    reason, headers = REJECTIONS[case]
    marker = f"secret-payload-{uuid.uuid4().hex}"
    evt = ignored_event(description=marker)
    body = body_of(evt)
    before = ingress.rejected(reason)
    assert_json_error(ingress.server.post_raw(body, headers(body)), 400)
    assert await ingress.stored(str(evt["id"])) == []
    assert ingress.rejected(reason) == before + 1
    assert marker not in ingress.server.log(), "a rejected payload must never be logged"


async def test_timestamp_inside_the_tolerance_and_in_the_future_are_accepted(ingress: Ingress) -> None:
    for timestamp in (int(time.time()) - TOLERANCE_S + 30, int(time.time()) + 3600):
        evt = ignored_event()
        body = body_of(evt)
        response = ingress.server.post_raw(body, signed(body, timestamp=timestamp))
        assert response.status_code == 200 and response.json()["duplicate"] is False


async def test_tampered_body_fails_the_signature(ingress: Ingress) -> None:
    evt = ignored_event()
    body = body_of(evt)
    headers = signed(body)
    tampered = body.replace(b'"livemode":false', b'"livemode":true')
    assert tampered != body
    before = ingress.rejected("bad_signature")
    assert_json_error(ingress.server.post_raw(tampered, headers), 400)
    assert await ingress.stored(str(evt["id"])) == []
    assert ingress.rejected("bad_signature") == before + 1


@pytest.mark.parametrize(
    "body",
    [b"this is not json", b'{"id": "evt_1", "type": ', b'["evt_1", "customer.created"]', b"\xff\xfe{}"],
    ids=["text", "truncated", "array", "not-utf8"],
)
async def test_signed_body_that_is_not_a_json_object_is_refused(ingress: Ingress, body: bytes) -> None:
    # Correctly signed: only the content is wrong (a non-UTF-8 body is refused unread).
    headers = {"Stripe-Signature": sign(body.decode("latin-1").encode(), WEBHOOK_SECRET)}
    before = ingress.rejected("not_json")
    assert_json_error(ingress.server.post_raw(body, headers), 400)
    assert ingress.rejected("not_json") == before + 1


@pytest.mark.parametrize(
    "change",
    [{"id": None}, {"type": None}, {"id": ""}, {"type": 42}, {"id": "x" * 256}, {"type": "t" * 129}, {"id": "evt_\x00nul"}],
    ids=["no-id", "no-type", "empty-id", "type-not-a-string", "id-too-long", "type-too-long", "id-with-nul"],
)
async def test_event_without_a_valid_id_or_type_is_refused(ingress: Ingress, change: dict[str, object]) -> None:
    evt = ignored_event()
    evt.update(change)
    for key, value in change.items():
        if value is None:
            del evt[key]
    body = body_of(evt)
    before = ingress.rejected("no_id_or_type")
    assert_json_error(ingress.server.post_raw(body, signed(body)), 400)
    assert ingress.rejected("no_id_or_type") == before + 1


@pytest.mark.parametrize("api_version", ["v" * 65, "2026-10-28.\x00"], ids=["too-long", "with-nul"])
async def test_event_with_an_api_version_its_column_cannot_hold_is_still_stored(
    ingress: Ingress, api_version: str
) -> None:
    """The version is informational; refusing the event (or 503 on every redelivery) would
    lose it. It is stored with the payload exactly as received."""
    evt = ignored_event()
    evt["api_version"] = api_version
    body = body_of(evt)
    response = ingress.server.post_raw(body, signed(body))
    assert response.status_code == 200 and response.json()["duplicate"] is False
    rows = await db_rows(ingress.settings.database_url, "SELECT payload, api_version FROM webhook_event WHERE id = $1", evt["id"])
    assert rows == [{"payload": body.decode(), "api_version": None}]


def padded_event(size: int) -> tuple[dict[str, object], bytes]:
    """A signed-able event whose JSON body is exactly `size` bytes."""
    evt = ignored_event(padding="")
    evt["padding"] = "p" * (size - len(body_of(evt)))
    body = body_of(evt)
    assert len(body) == size
    return evt, body


async def test_body_of_exactly_the_limit_is_accepted(ingress: Ingress) -> None:
    evt, body = padded_event(MAX_BYTES)
    response = ingress.server.post_raw(body, signed(body))
    assert response.status_code == 200 and response.json()["duplicate"] is False


async def test_body_over_the_limit_with_content_length_is_refused_unread(ingress: Ingress) -> None:
    evt, body = padded_event(MAX_BYTES + 1)
    before = ingress.rejected("too_large")
    assert_json_error(ingress.server.post_raw(body, signed(body)), 413)
    assert await ingress.stored(str(evt["id"])) == []
    assert ingress.rejected("too_large") == before + 1


async def test_chunked_body_over_the_limit_is_refused_while_reading(ingress: Ingress) -> None:
    """1 GiB sent in chunks without a Content-Length: the server answers 413 as soon as
    the limit is passed and stops reading; it never holds the body in memory."""
    total = 1024**3
    chunk = b"x" * 65536
    sent = 0

    def gigabyte() -> Iterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += len(chunk)
            yield chunk

    rss_before = ingress.server.rss_bytes()
    before = ingress.rejected("too_large")
    response = HTTP.post(
        f"{ingress.server.base_url}/webhooks/stripe", content=gigabyte(),
        headers={"Stripe-Signature": sign(b"{}", WEBHOOK_SECRET)}, timeout=60,
    )
    assert_json_error(response, 413)
    assert sent < 64 * 1024**2, f"the server kept reading: {sent} bytes taken"
    assert ingress.server.rss_bytes() - rss_before < 32 * 1024**2
    assert ingress.rejected("too_large") == before + 1


async def test_rotation_old_and_new_secret_both_verify(ingress: Ingress) -> None:
    for secret in (WEBHOOK_SECRET, NEXT_SECRET):
        evt = ignored_event()
        body = body_of(evt)
        response = ingress.server.post_raw(body, signed(body, secret))
        assert response.status_code == 200 and response.json()["duplicate"] is False


async def test_header_with_two_v1_signatures_verifies_when_one_matches(ingress: Ingress) -> None:
    """During a rotation on Stripe's side, the header carries one `v1` per secret."""
    evt = ignored_event()
    body = body_of(evt)
    t = int(time.time())
    unknown = sign(body, "whsec_retired_secret", t).split(",")[1]
    ours = sign(body, NEXT_SECRET, t).split(",")[1]
    response = ingress.server.post_raw(body, {"Stripe-Signature": f"t={t},{unknown},{ours}"})
    assert response.status_code == 200 and response.json()["duplicate"] is False


async def test_healthz_and_readyz_answer_when_everything_is_up(ingress: Ingress) -> None:
    assert HTTP.get(f"{ingress.server.base_url}/healthz").json() == {"status": "ok"}
    ready = HTTP.get(f"{ingress.server.base_url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
