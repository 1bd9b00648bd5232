"""One GraphQL execution per change for every subscriber that would get the same result.

A subscription's result for one change depends only on the change, the operation's
selection (its document and the variables used below the root field: the root field's
own arguments, such as `resumeAfter`, only pick the stream) and what the viewer may
see. With 1,000 dashboards open, executing the same selection once per subscriber was
most of the API's CPU (docs/benchmarks.md, fan-out). So the first subscriber of a group
executes it and the others reuse that result.

Only admins share: they all see everything. A user's subscription executes on its own,
so nothing computed for one user can reach another."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from graphql import ExecutionResult, Executor, FieldNode, Visitor, visit
from graphql.language import ArgumentNode, VariableNode
from graphql.language.visitor import SKIP, VisitorAction
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from models.changes import StatusChange

T = TypeVar("T")
# Results of the most recent changes, across all groups of subscribers; a change is
# only looked up while it fans out, so this need not be large.
RECENT_RESULTS = 256
RECENT_NODES = 256

Result = ExecutionResult | Awaitable[ExecutionResult]


class SharedResults:
    """The per-change results (and the nodes they were executed on) of one API process."""

    def __init__(self, results: int = RECENT_RESULTS, nodes: int = RECENT_NODES) -> None:
        self._results: OrderedDict[tuple[Hashable, int], tuple[object, Result]] = OrderedDict()
        self._nodes: OrderedDict[tuple[int, Callable[..., Any]], tuple[StatusChange, Any]] = OrderedDict()
        self._encoded: OrderedDict[int, tuple[object, str]] = OrderedDict()
        self._max_results, self._max_nodes = results, nodes

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

    def build_per_event_executor(self, payload: Any) -> Any:
        """What executes one event: the shared result when this subscriber may share."""
        if not self._selection_known:
            self._selection, self._selection_known = self._sharing_key(), True
        shared: SharedResults | None = getattr(self.context_value, "shared_results", None)
        if self._selection is None or shared is None:
            return super().build_per_event_executor(payload)
        # graphql-core only calls `execute_operation` on it; the copy of the executor
        # (a tenth of the fan-out's time) is made only by the one who executes.
        return _SharedEvent(shared, self._selection, payload, super().build_per_event_executor)

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
