"""DataLoaders, built per request (or per websocket operation): never shared between
viewers, and never caching across a long-lived socket."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from strawberry.dataloader import DataLoader
from tortoise.expressions import Q

from models.tables import Debt, Group, GroupMember, ProSubscription, User

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _by_id(fetch: Callable[[list[K]], Awaitable[dict[K, V]]], default: V) -> Callable[[list[K]], Awaitable[list[V]]]:
    async def load(keys: list[K]) -> list[V]:
        found = await fetch(list(dict.fromkeys(keys)))
        return [found.get(key, default) for key in keys]

    return load


async def _users(ids: Sequence[int]) -> dict[int, User | None]:
    return {u.id: u for u in await User.filter(id__in=ids)}


async def _groups(ids: Sequence[int]) -> dict[int, Group | None]:
    return {g.id: g for g in await Group.filter(id__in=ids)}


async def _debts(ids: Sequence[int]) -> dict[int, Debt | None]:
    return {d.id: d for d in await Debt.filter(id__in=ids)}


async def _member_ids(group_ids: Sequence[int]) -> dict[int, list[int]]:
    members: dict[int, list[int]] = defaultdict(list)
    rows = await GroupMember.filter(group_id__in=group_ids).order_by("id").values_list("group_id", "user_id")
    for group_id, user_id in rows:
        members[int(group_id)].append(int(user_id))
    return members


async def _group_ids_of(user_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    groups: dict[int, set[int]] = defaultdict(set)
    rows = await GroupMember.filter(user_id__in=user_ids).values_list("user_id", "group_id")
    for user_id, group_id in rows:
        groups[int(user_id)].add(int(group_id))
    return {user_id: frozenset(ids) for user_id, ids in groups.items()}


async def _current_pro_subscription(user_ids: Sequence[int]) -> dict[int, ProSubscription | None]:
    # "One current per user": the newest registration is the current one.
    current: dict[int, ProSubscription | None] = {}
    for sub in await ProSubscription.filter(user_id__in=user_ids).order_by("id"):
        current[sub.user_id] = sub
    return current


async def _debts_of_users(user_ids: Sequence[int]) -> dict[int, list[Debt]]:
    debts: dict[int, list[Debt]] = defaultdict(list)
    wanted = set(user_ids)
    for debt in await Debt.filter(Q(debtor_id__in=user_ids) | Q(creditor_id__in=user_ids)).order_by("-id"):
        for user_id in {debt.debtor_id, debt.creditor_id} & wanted:
            debts[user_id].append(debt)
    return debts


async def _debts_of_groups(group_ids: Sequence[int]) -> dict[int, list[Debt]]:
    debts: dict[int, list[Debt]] = defaultdict(list)
    for debt in await Debt.filter(group_id__in=group_ids).order_by("-id"):
        debts[debt.group_id].append(debt)
    return debts


@dataclass(frozen=True, eq=False)
class Loaders:
    user: DataLoader[int, User | None]
    group: DataLoader[int, Group | None]
    debt: DataLoader[int, Debt | None]
    member_ids: DataLoader[int, list[int]]
    group_ids_of_user: DataLoader[int, frozenset[int]]
    pro_subscription_of_user: DataLoader[int, ProSubscription | None]
    debts_of_user: DataLoader[int, list[Debt]]
    debts_of_group: DataLoader[int, list[Debt]]


def build_loaders(cache: bool = True) -> Loaders:
    """Fresh loaders; `cache=False` still batches within a tick but remembers nothing,
    for websocket connections that live for hours."""

    def loader(fetch: Callable[[list[int]], Awaitable[dict[int, V]]], default: V) -> DataLoader[int, V]:
        return DataLoader(load_fn=_by_id(fetch, default), cache=cache)

    return Loaders(
        user=loader(_users, None),
        group=loader(_groups, None),
        debt=loader(_debts, None),
        member_ids=loader(_member_ids, []),
        group_ids_of_user=loader(_group_ids_of, frozenset()),
        pro_subscription_of_user=loader(_current_pro_subscription, None),
        debts_of_user=loader(_debts_of_users, []),
        debts_of_group=loader(_debts_of_groups, []),
    )
