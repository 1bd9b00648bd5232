"""One GraphQL execution per change for every subscriber that would get the same result.

A subscription's result for one change depends only on the change, the operation's
selection (its document and the variables used below the root field: the root field's
own arguments, such as `resumeAfter`, only pick the stream) and what the viewer may
see. With 1,000 dashboards open, executing the same selection once per subscriber was
most of the API's CPU (docs/benchmarks.md, fan-out). So the first subscriber of a group
executes it and the others reuse that result.

Only admins share: they all see everything. A user's subscription executes on its own,
so nothing computed for one user can reach another.

Going further for the ordered feed (`FeedGroup`): once an admin's `reconciliationFeed`
on a graphql-transport-ws socket is live and in order, one task per sharing group
executes each change once, encodes it once and writes the same `next` text, but for
each operation's id, to every socket of the group. The per-subscriber path (queue,
generators, strawberry's stream, the transport handler) was ~60 % of the API's CPU per
delivery. A subscriber the group cannot serve at once (socket not writable, an error in
the result) is handed back to its own stream, which catches up from the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from graphql import ExecutionResult, Executor, FieldNode, Visitor, visit
from graphql.language import ArgumentNode, VariableNode
from graphql.language.visitor import SKIP, VisitorAction
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.metrics import WS_SUBSCRIBERS
from models.changes import StatusChange

log = logging.getLogger("trackit.fanout")

T = TypeVar("T")
# Results of the most recent changes, across all groups of subscribers; a change is
# only looked up while it fans out, so this need not be large.
RECENT_RESULTS = 256
RECENT_NODES = 256

Result = ExecutionResult | Awaitable[ExecutionResult]
OpenStream = Callable[[int], AsyncGenerator[StatusChange, None]]
# Changes a FeedGroup streams with no member before it stops.
UNATTENDED_CHANGES = 2


class SharedResults:
    """The per-change results (and the nodes they were executed on) of one API process."""

    def __init__(self, results: int = RECENT_RESULTS, nodes: int = RECENT_NODES) -> None:
        self._results: OrderedDict[tuple[Hashable, int], tuple[object, Result]] = OrderedDict()
        self._nodes: OrderedDict[tuple[int, Callable[..., Any]], tuple[StatusChange, Any]] = OrderedDict()
        self._encoded: OrderedDict[int, tuple[object, str]] = OrderedDict()
        self._max_results, self._max_nodes = results, nodes
        self.feeds = FeedGroups(self)

    def node(self, change: StatusChange, to_node: Callable[[StatusChange], T]) -> T:
        """`to_node(change)`, the same object for every subscriber handed this change."""
        # Identity, not sequence: a change replayed from the log is another object.
        key = (id(change), to_node)
        entry = self._nodes.get(key)
        if entry is not None and entry[0] is change:
            return cast(T, entry[1])
        node = to_node(change)
        # The entry holds the change, so its id cannot be reused while it is here.
        _remember(self._nodes, key, (change, node), self._max_nodes)
        return node

    def result(self, selection: Hashable, payload: object, execute: Callable[[], Result]) -> Result:
        """The result of `selection` on `payload`, executed once by the first who asks."""
        key = (selection, id(payload))
        entry = self._results.get(key)
        if entry is not None and entry[0] is payload:
            stored = entry[1]
        else:
            stored = execute()
            if isinstance(stored, Awaitable):
                # Those who ask while it runs await the same task; one leaving
                # (a closed socket) must not cancel it for the others.
                stored = asyncio.ensure_future(stored)
            _remember(self._results, key, (payload, stored), self._max_results)
        if isinstance(stored, asyncio.Future):
            return _shielded(stored)
        return stored


    def encoded(self, data: object, encode: Callable[[object], str]) -> str:
        """`encode(data)`, once for every subscriber handed this very result."""
        entry = self._encoded.get(id(data))
        if entry is not None and entry[0] is data:
            return entry[1]
        text = encode(data)
        _remember(self._encoded, id(data), (data, text), self._max_results)
        return text


async def _shielded(task: asyncio.Future[ExecutionResult]) -> ExecutionResult:
    return await asyncio.shield(task)


def _remember(store: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, executing a subscription event once per sharing group."""

    _selection: Hashable | None = None
    _selection_known = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The subscription resolver runs next, in this task: it may hand its stream to
        # a FeedGroup, which executes events with this executor.
        CURRENT_EXECUTOR.set(self)

    def build_per_event_executor(self, payload: Any) -> Any:
        """What executes one event: the shared result when this subscriber may share."""
        selection = self.sharing_key()
        shared: SharedResults | None = getattr(self.context_value, "shared_results", None)
        if selection is None or shared is None:
            return super().build_per_event_executor(payload)
        # graphql-core only calls `execute_operation` on it; the copy of the executor
        # (a tenth of the fan-out's time) is made only by the one who executes.
        return _SharedEvent(shared, selection, payload, super().build_per_event_executor)

    def sharing_key(self) -> Hashable | None:
        """What a result of this operation depends on besides the event; None: not shared."""
        if not self._selection_known:
            self._selection, self._selection_known = self._sharing_key(), True
        return self._selection

    def _sharing_key(self) -> Hashable | None:
        viewer = getattr(self.context_value, "viewer", None)
        location = self.operation.loc
        if viewer is None or not viewer.is_admin or location is None:
            return None
        used = selection_variables(self.operation.selection_set.selections, self.fragment_definitions.values())
        variables = {name: value for name, value in self.variable_values.coerced.items() if name in used}
        try:
            frozen = json.dumps(variables, sort_keys=True, default=str)
        except (TypeError, ValueError):
            return None
        name = self.operation.name.value if self.operation.name else None
        return ("admin", location.source.body, name, frozen)


class _SharedEvent:
    def __init__(
        self, shared: SharedResults, selection: Hashable, payload: object, build: Callable[[Any], Executor]
    ) -> None:
        self.shared, self.selection, self.payload, self.build = shared, selection, payload, build

    def execute_operation(self, serially: bool | None = None) -> Result:
        return self.shared.result(
            self.selection, self.payload,
            lambda: cast(Result, self.build(self.payload).execute_operation(serially)),
        )


class _VariablesBelowRoot(Visitor):
    def __init__(self, root_arguments: set[int]) -> None:
        super().__init__()
        self.root_arguments = root_arguments
        self.used: set[str] = set()

    def enter_argument(self, node: ArgumentNode, *_: Any) -> VisitorAction:
        return SKIP if id(node) in self.root_arguments else None

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.used.add(node.name.value)


def selection_variables(root_selections: Any, fragments: Any) -> set[str]:
    """Names of the variables used anywhere but in the root fields' own arguments."""
    root_arguments = {id(a) for s in root_selections if isinstance(s, FieldNode) for a in s.arguments or ()}
    visitor = _VariablesBelowRoot(root_arguments)
    for node in (*root_selections, *fragments):
        visit(node, visitor)
    return visitor.used


# The operation (graphql-transport-ws `subscribe`) whose task is running: set by the
# transport handler, read by a subscription resolver to hand its stream to a FeedGroup.
CURRENT_OPERATION: ContextVar[SocketOperation | None] = ContextVar("trackit_operation", default=None)
# The executor graphql-core built for the operation running in this task.
CURRENT_EXECUTOR: ContextVar[SharedEventExecutor | None] = ContextVar("trackit_executor", default=None)


@dataclass(eq=False)
class SocketOperation:
    """One graphql-transport-ws operation: its id, and how to write to its socket."""

    id: str
    send_text: Callable[[str], Coroutine[Any, Any, None]]
    # Still running: False once the client completed it or the socket closed.
    active: Callable[[], bool]


class FeedGroups:
    """The FeedGroups of one API process, by what their members receive."""

    def __init__(self, shared: SharedResults) -> None:
        self.shared = shared
        self.groups: dict[Hashable, FeedGroup] = {}

    def member(
        self, stream: Hashable, open_stream: OpenStream, to_node: Callable[[StatusChange], Any]
    ) -> FeedMember | None:
        """A member for the subscription running in this task, or None when it cannot
        share: not on a graphql-transport-ws socket, or not an admin. `stream` names
        what `open_stream(after)` streams: the changes after `after`, in sequence order
        with none missing."""
        operation, executor = CURRENT_OPERATION.get(), CURRENT_EXECUTOR.get()
        if operation is None or executor is None:
            return None
        selection = executor.sharing_key()
        if selection is None:
            return None
        return FeedMember(self, (stream, selection), operation, executor, open_stream, to_node)

    def group(self, member: FeedMember) -> FeedGroup:
        group = self.groups.get(member.key)
        if group is None:
            group = self.groups[member.key] = FeedGroup(self, member.key, member.open_stream, member.to_node)
        return group


class FeedMember:
    """One subscription of an ordered feed that a FeedGroup may deliver for.

    While a member is in its group, its own stream leaves the broadcast and waits; the
    group writes each change to its socket. The group hands it back (its own stream
    catches up from the audit log from `last`) when its socket is not writable at once
    or a change cannot be sent as is (an error in the result)."""

    def __init__(
        self, groups: FeedGroups, key: Hashable, operation: SocketOperation, executor: SharedEventExecutor,
        open_stream: OpenStream, to_node: Callable[[StatusChange], Any],
    ) -> None:
        self.groups, self.key, self.operation, self.executor = groups, key, operation, executor
        self.open_stream, self.to_node = open_stream, to_node
        self.prefix = '{"id":' + json.dumps(operation.id)
        self.last = 0
        self.group: FeedGroup | None = None
        self.returned: asyncio.Future[None] | None = None
        self.pending: asyncio.Task[None] | None = None

    def take(self, last: int) -> bool:
        """Join the group if it will deliver every change after `last` (and none before)."""
        group = self.groups.group(self)
        if not group.ready or group.last > last:
            group.start()
            return False
        self.last, self.group = last, group
        self.returned = asyncio.get_running_loop().create_future()
        group.members.add(self)
        # Its stream left the broadcast, which counted it: it is still a subscription.
        WS_SUBSCRIBERS.inc()
        return True

    async def taken_back(self) -> int:
        """Wait until the group hands this member back: the last sequence it delivered."""
        assert self.returned is not None
        try:
            await self.returned
            if self.pending is not None:
                # Its last message must reach the socket before the next one.
                with contextlib.suppress(Exception):
                    await self.pending
        finally:
            self.leave()
        self.pending = None
        return self.last

    def leave(self) -> None:
        if self.group is not None:
            self.group.remove(self)
            self.group = None
            WS_SUBSCRIBERS.dec()
        if self.returned is not None and not self.returned.done():
            self.returned.set_result(None)


class FeedGroup:
    """Delivers one ordered feed to all its members with one task: each change executed
    once, encoded once, and written to each socket as the same text but for the id."""

    def __init__(
        self, groups: FeedGroups, key: Hashable, open_stream: OpenStream, to_node: Callable[[StatusChange], Any]
    ) -> None:
        self.groups, self.key, self.open_stream, self.to_node = groups, key, open_stream, to_node
        self.members: set[FeedMember] = set()
        self.ready = False
        self.last = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="feed-group")

    def remove(self, member: FeedMember) -> None:
        self.members.discard(member)
        if not self.members and self.ready and self.task is not None:
            # Nobody left to deliver to: stop listening; the next member starts anew.
            self.task.cancel()
            if self.groups.groups.get(self.key) is self:
                del self.groups.groups[self.key]

    async def _run(self) -> None:
        from schema.live import head_sequence

        try:
            self.last = await head_sequence()
            # From the log after `last`, then live: nothing committed meanwhile is missed.
            changes = self.open_stream(self.last)
            self.ready = True
            unattended = 0
            async with contextlib.aclosing(changes):
                async for change in changes:
                    # Members joining from now on have delivered this change themselves.
                    self.last = change.sequence
                    # A stream joins at its first change after the group is ready: a
                    # group nobody joined (they left meanwhile) stops.
                    unattended = 0 if self.members else unattended + 1
                    if unattended > UNATTENDED_CHANGES:
                        return
                    members = [m for m in self.members if m.last < change.sequence]
                    if members:
                        await self._deliver(change, members)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed group failed; its members go on with their own streams")
        finally:
            if self.groups.groups.get(self.key) is self:
                del self.groups.groups[self.key]
            for member in list(self.members):
                member.leave()

    async def _deliver(self, change: StatusChange, members: list[FeedMember]) -> None:
        node = self.groups.shared.node(change, self.to_node)
        executor = members[0].executor.build_per_event_executor(node)
        result = executor.execute_operation(False)
        if isinstance(result, Awaitable):
            result = await result
        if result.errors or result.extensions or not isinstance(result.data, dict):
            # Errors go through strawberry's own path (formatting, codes): each member
            # sends this change itself, from the log.
            for member in members:
                member.leave()
            return
        tail = ',"type":"next","payload":{"data":' + self.groups.shared.encoded(result.data, _compact) + "}}"
        for member in members:
            if member.group is not self:
                continue
            if not member.operation.active():
                member.leave()
                continue
            try:
                pending = start_eagerly(member.operation.send_text(member.prefix + tail))
            except Exception:  # the socket closed: its operation task ends on its own
                member.leave()
                continue
            member.last = change.sequence
            if pending is not None:
                # Not writable now: it must not hold up the others.
                member.pending = pending
                member.leave()


def _compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def start_eagerly(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coroutine` now up to its first suspension: None if it finished without one
    (a send to a writable socket), else a task finishing it (asyncio's eager tasks,
    from Python 3.12 on, do the same)."""
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_Resumed(coroutine, waiting_on).run())


class _Resumed:
    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self.coroutine, self.waiting_on = coroutine, waiting_on

    async def run(self) -> None:
        await self

    def __await__(self) -> Generator[Any, Any, None]:
        waiting_on = self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # cancellation included: the coroutine handles it
                try:
                    waiting_on = self.coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = self.coroutine.send(sent)
                except StopIteration:
                    return
