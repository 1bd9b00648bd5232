"""The statuses and kinds named in SPEC section 6."""

from enum import Enum


class ProSubscriptionStatus(str, Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    CANCELED = "CANCELED"


class DebtStatus(str, Enum):
    OPEN = "OPEN"
    PENDING_SETTLEMENT = "PENDING_SETTLEMENT"
    SETTLED = "SETTLED"
    SETTLEMENT_FAILED = "SETTLEMENT_FAILED"


class WebhookEventStatus(str, Enum):
    RECEIVED = "RECEIVED"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    IGNORED = "IGNORED"
    RETRYING = "RETRYING"
    DEAD = "DEAD"


class PaymentKind(str, Enum):
    SUBSCRIPTION = "SUBSCRIPTION"
    SETTLEMENT = "SETTLEMENT"


class PaymentStatus(str, Enum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REVERSED = "REVERSED"


class Plan(str, Enum):
    FREE = "FREE"
    PRO = "PRO"
