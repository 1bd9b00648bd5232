"""Which debt changes a user may be pushed (SPEC section 7): debts they are party to, or
in a group they belong to. Group membership is fixed when a group is created
(`createGroup` is the only way in), so it is read once per subscription and only groups
created later are looked up as their debts appear."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.tables import Group, GroupMember


@dataclass
class DebtAudience:
    user_id: int
    member_of: set[int]
    # Groups up to this id existed when the subscription began: membership is known.
    known_up_to: int
    not_member_of: set[int] = field(default_factory=set)

    @classmethod
    async def of_user(cls, user_id: int) -> DebtAudience:
        # The newest group first: a group created in between is then looked up later.
        newest = await Group.all().order_by("-id").first()
        memberships = await GroupMember.filter(user_id=user_id)
        return cls(user_id, {m.group_id for m in memberships}, newest.id if newest is not None else 0)

    def verdict(self, snapshot: dict[str, Any]) -> bool | None:
        """True or False when known without a query; None when the group is new."""
        if self.user_id in (snapshot.get("debtor_id"), snapshot.get("creditor_id")):
            return True
        group_id = int(snapshot.get("group_id") or 0)
        if group_id in self.member_of:
            return True
        if group_id in self.not_member_of or group_id <= self.known_up_to:
            return False
        return None

    def may_see(self, snapshot: dict[str, Any]) -> bool:
        """The fan-out's cheap filter: let through what might be visible."""
        return self.verdict(snapshot) is not False

    async def admits(self, snapshot: dict[str, Any]) -> bool:
        """The final word, looking up membership of a group created after we started."""
        verdict = self.verdict(snapshot)
        if verdict is not None:
            return verdict
        group_id = int(snapshot["group_id"])
        if await GroupMember.filter(group_id=group_id, user_id=self.user_id).exists():
            self.member_of.add(group_id)
            return True
        self.not_member_of.add(group_id)
        return False
