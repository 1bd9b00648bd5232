"""The statuses and kinds of SPEC section 6, registered as GraphQL enums with the same
names and values: the types use the domain's own enum classes."""

from __future__ import annotations

import strawberry

from models.enums import (
    DebtStatus,
    PaymentKind,
    PaymentStatus,
    Plan,
    ProSubscriptionStatus,
    WebhookEventStatus,
)

for _enum in (Plan, ProSubscriptionStatus, DebtStatus, WebhookEventStatus, PaymentKind, PaymentStatus):
    strawberry.enum(_enum)

__all__ = [
    "DebtStatus",
    "PaymentKind",
    "PaymentStatus",
    "Plan",
    "ProSubscriptionStatus",
    "WebhookEventStatus",
]
