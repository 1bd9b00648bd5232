"""Group balances (SPEC section 6): per member and currency, what others owe them minus
what they owe, over the debts not SETTLED. They sum to zero per currency."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from models.enums import DebtStatus
from models.tables import Debt, GroupMember


@dataclass(frozen=True, slots=True)
class Balance:
    user_id: int
    currency: str
    net_cents: int


async def group_balances(group_id: int) -> list[Balance]:
    """Every member's net per currency in use, ordered by currency then user id."""
    members: list[int] = await GroupMember.filter(group_id=group_id).values_list("user_id", flat=True)  # type: ignore[assignment]
    debts = await (
        Debt.filter(group_id=group_id)
        .exclude(status=DebtStatus.SETTLED)
        .values_list("debtor_id", "creditor_id", "amount_cents", "currency")
    )
    net: dict[tuple[str, int], int] = defaultdict(int)
    for debtor_id, creditor_id, amount, currency in debts:
        net[(currency, debtor_id)] -= amount
        net[(currency, creditor_id)] += amount
    users = set(members) | {u for _, u in net}
    return [
        Balance(user_id=user_id, currency=currency, net_cents=net.get((currency, user_id), 0))
        for currency in sorted({c for c, _ in net})
        for user_id in sorted(users)
    ]
