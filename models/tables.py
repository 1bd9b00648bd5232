"""Tortoise models for every record of SPEC section 6. Money is integer cents."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.enums import (
    DebtStatus,
    PaymentKind,
    PaymentStatus,
    ProSubscriptionStatus,
    WebhookEventStatus,
)


class User(Model):
    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=320, unique=True)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user"


class Group(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "group"


class GroupMember(Model):
    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="memberships", on_delete=fields.RESTRICT
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="memberships", on_delete=fields.RESTRICT
    )
    group_id: int
    user_id: int

    class Meta:
        table = "group_member"
        unique_together = (("group", "user"),)


class Debt(Model):
    id = fields.BigIntField(primary_key=True)
    group: fields.ForeignKeyRelation[Group] = fields.ForeignKeyField(
        "models.Group", related_name="debts", on_delete=fields.RESTRICT
    )
    debtor: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="debts_owed", on_delete=fields.RESTRICT
    )
    creditor: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="debts_due", on_delete=fields.RESTRICT
    )
    # The foreign keys' columns, which Tortoise sets on instances (typed for mypy).
    group_id: int
    debtor_id: int
    creditor_id: int
    amount_cents = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    status = fields.CharEnumField(DebtStatus, max_length=24, default=DebtStatus.OPEN)
    transfer_id = fields.CharField(max_length=255, null=True, db_index=True)
    payment_intent_id = fields.CharField(max_length=255, null=True, db_index=True)
    settled_at = fields.DatetimeField(null=True)
    # Stripe `created` (unix seconds) of the last event applied: older events are stale.
    last_event_created = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "debt"
        indexes = (("status", "id"), ("group_id", "status"))


class ProSubscription(Model):
    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="pro_subscriptions", on_delete=fields.RESTRICT
    )
    user_id: int
    status = fields.CharEnumField(
        ProSubscriptionStatus, max_length=16, default=ProSubscriptionStatus.PENDING
    )
    stripe_subscription_id = fields.CharField(max_length=255, null=True, db_index=True)
    stripe_customer_id = fields.CharField(max_length=255, null=True)
    payment_intent_id = fields.CharField(max_length=255, null=True, db_index=True)
    current_period_end = fields.DatetimeField(null=True)
    activated_at = fields.DatetimeField(null=True)
    last_event_created = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "pro_subscription"
        indexes = (("status", "id"), ("user_id", "id"))


class Payment(Model):
    """The payment history: one row per money movement, never updated."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="payments", on_delete=fields.RESTRICT
    )
    user_id: int
    kind = fields.CharEnumField(PaymentKind, max_length=16)
    status = fields.CharEnumField(PaymentStatus, max_length=16)
    amount_cents = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    # The payment intent when known, else the invoice or transfer: the same money seen
    # through two event types (invoice.paid, payment_intent.succeeded) is one row.
    stripe_object_id = fields.CharField(max_length=255)
    event_id = fields.CharField(max_length=255, unique=True)
    occurred_at = fields.DatetimeField()
    debt: fields.ForeignKeyNullableRelation[Debt] = fields.ForeignKeyField(
        "models.Debt", related_name="payments", null=True, on_delete=fields.RESTRICT
    )
    pro_subscription: fields.ForeignKeyNullableRelation[ProSubscription] = (
        fields.ForeignKeyField(
            "models.ProSubscription",
            related_name="payments",
            null=True,
            on_delete=fields.RESTRICT,
        )
    )
    debt_id: int | None
    pro_subscription_id: int | None

    class Meta:
        table = "payment"
        unique_together = (("stripe_object_id", "status"),)
        indexes = (("user_id", "id"),)


class WebhookEvent(Model):
    """The inbox: every stored Stripe event with its raw payload, as received."""

    id = fields.CharField(max_length=255, primary_key=True)
    type = fields.CharField(max_length=128)
    status = fields.CharEnumField(
        WebhookEventStatus, max_length=16, default=WebhookEventStatus.RECEIVED
    )
    attempts = fields.IntField(default=0)
    failures = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    received_at = fields.DatetimeField()
    processed_at = fields.DatetimeField(null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    # Space-separated Stripe ids a RETRYING event waits for (record not registered yet).
    waiting_for = fields.CharField(max_length=1024, null=True)
    livemode = fields.BooleanField(default=False)
    api_version = fields.CharField(max_length=64, null=True)
    created = fields.BigIntField(null=True)
    payload = fields.TextField()

    class Meta:
        table = "webhook_event"
        indexes = (
            ("status", "received_at"),
            ("status", "next_attempt_at"),
            ("type", "received_at"),
        )


class AuditEntry(Model):
    """Append-only, hash-chained. `id` is assigned under the chain head's lock, in commit
    order, so it doubles as the durable `StatusChange.sequence` of the live feed."""

    id = fields.BigIntField(primary_key=True, generated=False)
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=255)
    action = fields.CharField(max_length=64)
    entity_type = fields.CharField(max_length=64)
    entity_id = fields.CharField(max_length=255)
    before: fields.Field[dict | None] = fields.JSONField(null=True)  # type: ignore[type-arg]
    after: fields.Field[dict | None] = fields.JSONField(null=True)  # type: ignore[type-arg]
    event_id = fields.CharField(max_length=255, null=True)
    # Set on status changes only: the reconciliation feed reads these.
    from_status = fields.CharField(max_length=32, null=True)
    to_status = fields.CharField(max_length=32, null=True)
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_entry"
        indexes = (("entity_type", "entity_id"), ("to_status", "id"), ("event_id",))


class LedgerHead(Model):
    """One row: the tip of the audit chain. Locked only for the last statements of a
    transaction, when its audit entries are appended."""

    id = fields.IntField(primary_key=True, generated=False)
    last_id = fields.BigIntField(default=0)
    last_hash = fields.CharField(max_length=64)

    class Meta:
        table = "ledger_head"
