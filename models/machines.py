"""The state machines of SPEC section 6: which status moves a record allows."""

from __future__ import annotations

from enum import Enum

from models.enums import DebtStatus as D
from models.enums import ProSubscriptionStatus as P

# ACTIVE -> ACTIVE is a renewal (a new invoice paid): the period moves, the status stays.
PRO_SUBSCRIPTION: dict[P, frozenset[P]] = {
    P.PENDING: frozenset({P.ACTIVE, P.PAST_DUE, P.CANCELED}),
    P.ACTIVE: frozenset({P.ACTIVE, P.PAST_DUE, P.CANCELED}),
    P.PAST_DUE: frozenset({P.ACTIVE, P.CANCELED}),
    P.CANCELED: frozenset(),
}

# SETTLED is left only by a fully reversed transfer (back to OPEN). A failed settlement
# may still succeed: Stripe lets a customer retry the same payment intent.
DEBT: dict[D, frozenset[D]] = {
    D.OPEN: frozenset({D.PENDING_SETTLEMENT}),
    D.PENDING_SETTLEMENT: frozenset({D.SETTLED, D.SETTLEMENT_FAILED}),
    D.SETTLEMENT_FAILED: frozenset({D.PENDING_SETTLEMENT, D.SETTLED}),
    D.SETTLED: frozenset({D.OPEN}),
}


def allows(from_status: Enum, to_status: Enum) -> bool:
    """Whether the machine of `from_status`'s type allows the move."""
    if isinstance(from_status, P) and isinstance(to_status, P):
        return to_status in PRO_SUBSCRIPTION[from_status]
    if isinstance(from_status, D) and isinstance(to_status, D):
        return to_status in DEBT[from_status]
    return False
