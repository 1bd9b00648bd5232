"""The few Stripe API reads the operator's tools need: the Events API (backfill) and one
object by id (the stuck-record check). Plain httpx against `TRACKIT_STRIPE_API_BASE`,
so tests point it at a local fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

# Retried: Stripe's rate limit and its transient failures.
_RETRY_STATUSES = {429, 500, 502, 503, 504}


class StripeApiError(Exception):
    """Stripe answered with an error (or not at all) after the retries."""


class StripeApi:
    """An async Stripe REST client with a secret key (`async with StripeApi(...) as api`)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 20.0, tries: int = 4) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "trackit-operator/1"},
            timeout=timeout,
        )
        self._tries = tries

    async def __aenter__(self) -> StripeApi:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def _get(self, path: str, params: httpx.QueryParams | None = None) -> httpx.Response:
        delay = 0.5
        for attempt in range(1, self._tries + 1):
            try:
                response = await self._client.get(path, params=params)
            except httpx.TransportError as exc:
                if attempt == self._tries:
                    raise StripeApiError(f"GET {path}: {exc.__class__.__name__}: {exc}") from None
            else:
                if response.status_code not in _RETRY_STATUSES or attempt == self._tries:
                    return response
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def event_pages(
        self, created_gte: int, types: list[str] | None = None, page_size: int = 100
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every event created at or after `created_gte`, a page at a time, newest first."""
        params = [("created[gte]", str(created_gte)), ("limit", str(page_size))]
        params += [("types[]", t) for t in types or []]
        after: str | None = None
        while True:
            page_params = params + ([("starting_after", after)] if after else [])
            response = await self._get("/v1/events", httpx.QueryParams(tuple(page_params)))
            body = _json_or_raise(response, "/v1/events")
            events: list[dict[str, Any]] = body.get("data") or []
            if events:
                yield events
            if not body.get("has_more") or not events:
                return
            after = str(events[-1]["id"])

    async def retrieve(self, path: str) -> dict[str, Any] | None:
        """The object at `path` (e.g. `/v1/transfers/tr_…`), or None when Stripe has no such id."""
        response = await self._get(path)
        if response.status_code == 404:
            return None
        return _json_or_raise(response, path)


def _json_or_raise(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except json.JSONDecodeError:
        raise StripeApiError(f"GET {path}: HTTP {response.status_code}, not JSON") from None
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") if isinstance(error, dict) else None
        raise StripeApiError(f"GET {path}: HTTP {response.status_code}: {message or body}")
    return body
