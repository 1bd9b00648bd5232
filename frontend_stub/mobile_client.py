"""What the mobile app does while it waits for "settled": watch one debt and print each
change. `python -m frontend_stub.mobile_client --url ws://127.0.0.1:8000/graphql
--token T --debt-id N`. It reconnects on its own; after a reconnect it reads the debt
once, so a change pushed while the phone was offline still shows."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Callable
from typing import Any

from gql import Client, gql
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from websockets.exceptions import ConnectionClosed

DEBT_FIELDS = "id status amountCents currency transferId paymentIntentId settledAt updatedAt"
WATCH = gql(f"subscription Watch($debtId: ID!) {{ debtStatusChanged(debtId: $debtId) {{ {DEBT_FIELDS} }} }}")
CURRENT = gql(f"query Current($debtId: ID!) {{ debt(id: $debtId) {{ {DEBT_FIELDS} }} }}")
# A token the server refuses will not become valid by retrying.
FATAL_CODES = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"}
FATAL_CLOSE_CODES = {4401, 4403}


class Refused(Exception):
    """The server refused the token or the debt: stop instead of reconnecting."""


class DebtWatcher:
    """Prints each status of one debt it learns of, at most once per status change."""

    def __init__(self, url: str, token: str, debt_id: str, emit: Callable[[dict[str, Any], str], None]) -> None:
        self.url, self.token, self.debt_id, self.emit = url, token, debt_id, emit
        self.last_status: str | None = None

    def _transport(self) -> WebsocketsTransport:
        return WebsocketsTransport(
            url=self.url,
            init_payload={"Authorization": f"Bearer {self.token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            ping_interval=20,
            keep_alive_timeout=None,
        )

    def _seen(self, debt: dict[str, Any], source: str) -> None:
        if debt["status"] != self.last_status:
            self.last_status = debt["status"]
            self.emit(debt, source)

    async def watch_once(self) -> None:
        """One connection: subscribe, read the current state, then print pushes until it drops."""
        async with Client(transport=self._transport(), fetch_schema_from_transport=False) as session:
            variables = {"debtId": self.debt_id}
            pushes = session.subscribe(WATCH, variable_values=variables)
            first_push = asyncio.ensure_future(pushes.__anext__())
            try:
                # After the subscribe message, so a change in between is caught by one or the other.
                await asyncio.sleep(0)
                current = await session.execute(CURRENT, variable_values=variables)
                if current.get("debt") is None:
                    raise Refused(f"debt {self.debt_id} not found (or not yours)")
                self._seen(current["debt"], "current")
                self._seen((await first_push)["debtStatusChanged"], "push")
                async for result in pushes:
                    self._seen(result["debtStatusChanged"], "push")
            finally:
                first_push.cancel()
                await pushes.aclose()

    async def run(self) -> None:
        """Watch forever, reconnecting with capped exponential backoff."""
        delay = 0.5
        while True:
            try:
                await self.watch_once()
                delay = 0.5
            except TransportQueryError as exc:
                codes = {(e.get("extensions") or {}).get("code") for e in (exc.errors or [])}
                if codes & FATAL_CODES:
                    raise Refused(str(exc)) from None
                _note(f"query error: {exc}; reconnecting")
            except (TransportError, OSError, asyncio.TimeoutError) as exc:
                code = _close_code(exc)
                if code in FATAL_CLOSE_CODES:
                    raise Refused(f"the server refused the token (websocket closed with {code})") from None
                _note(f"connection lost ({exc.__class__.__name__}: {exc}); reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 15.0)


def _close_code(exc: BaseException) -> int | None:
    """The websocket close code behind a gql transport error, if the server sent one."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain, not a cycle: but never loop forever on one
        if seen is None:
            break
        if isinstance(seen, ConnectionClosed) and seen.rcvd is not None:
            return int(seen.rcvd.code)
        seen = seen.__cause__ or seen.__context__
    return None


def _note(text: str) -> None:
    sys.stderr.write(f"mobile_client: {text}\n")
    sys.stderr.flush()


def _emitter(as_json: bool) -> Callable[[dict[str, Any], str], None]:
    def emit(debt: dict[str, Any], source: str) -> None:
        if as_json:
            line = json.dumps({**debt, "source": source}, separators=(",", ":"))
        else:
            amount = f"{debt['amountCents'] / 100:.2f} {debt['currency'].upper()}"
            note = " (current)" if source == "current" else ""
            line = f"debt {debt['id']}: {debt['status']}{note} · {amount} · updated {debt['updatedAt']}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    return emit


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and watch the debt until interrupted."""
    parser = argparse.ArgumentParser(description="Watch one debt's status over GraphQL subscriptions")
    parser.add_argument("--url", required=True, help="the GraphQL websocket, e.g. ws://127.0.0.1:8000/graphql")
    parser.add_argument("--token", required=True, help="a bearer token (the debtor, the creditor or an admin)")
    parser.add_argument("--debt-id", required=True, help="the debt to watch")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    args = parser.parse_args(argv)
    url = args.url if args.url.rstrip("/").endswith("/graphql") else args.url.rstrip("/") + "/graphql"
    watcher = DebtWatcher(url, args.token, str(args.debt_id), _emitter(args.json))
    try:
        asyncio.run(watcher.run())
    except Refused as exc:
        _note(str(exc))
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
