from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import DebtStatus, PaymentKind, PaymentStatus, ProSubscriptionStatus, WebhookEventStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=255)),
                ('action', fields.CharField(max_length=64)),
                ('entity_type', fields.CharField(max_length=64)),
                ('entity_id', fields.CharField(max_length=255)),
                ('before', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('after', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('event_id', fields.CharField(null=True, max_length=255)),
                ('from_status', fields.CharField(null=True, max_length=32)),
                ('to_status', fields.CharField(null=True, max_length=32)),
                ('prev_hash', fields.CharField(max_length=64)),
                ('hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'audit_entry', 'app': 'models', 'indexes': [Index(fields=['entity_type', 'entity_id']), Index(fields=['to_status', 'id']), Index(fields=['event_id'])], 'pk_attr': 'id', 'table_description': "Append-only, hash-chained. `id` is assigned under the chain head's lock, in commit"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Group',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'group', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerHead',
            fields=[
                ('id', fields.IntField(primary_key=True, unique=True, db_index=True)),
                ('last_id', fields.BigIntField(default=0)),
                ('last_hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'ledger_head', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One row: the tip of the audit chain. Locked only for the last statements of a'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(unique=True, max_length=320)),
                ('name', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'user', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Debt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='debts', on_delete=OnDelete.RESTRICT)),
                ('debtor', fields.ForeignKeyField('models.User', source_field='debtor_id', db_constraint=True, to_field='id', related_name='debts_owed', on_delete=OnDelete.RESTRICT)),
                ('creditor', fields.ForeignKeyField('models.User', source_field='creditor_id', db_constraint=True, to_field='id', related_name='debts_due', on_delete=OnDelete.RESTRICT)),
                ('amount_cents', fields.BigIntField()),
                ('currency', fields.CharField(max_length=3)),
                ('status', fields.CharEnumField(default=DebtStatus.OPEN, description='OPEN: OPEN\nPENDING_SETTLEMENT: PENDING_SETTLEMENT\nSETTLED: SETTLED\nSETTLEMENT_FAILED: SETTLEMENT_FAILED', enum_type=DebtStatus, max_length=24)),
                ('transfer_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('payment_intent_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_event_created', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'debt', 'app': 'models', 'indexes': [Index(fields=['status', 'id']), Index(fields=['group_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GroupMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.Group', source_field='group_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.RESTRICT)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'group_member', 'app': 'models', 'unique_together': (('group', 'user'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProSubscription',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='pro_subscriptions', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=ProSubscriptionStatus.PENDING, description='PENDING: PENDING\nACTIVE: ACTIVE\nPAST_DUE: PAST_DUE\nCANCELED: CANCELED', enum_type=ProSubscriptionStatus, max_length=16)),
                ('stripe_subscription_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('stripe_customer_id', fields.CharField(null=True, max_length=255)),
                ('payment_intent_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('current_period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('activated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_event_created', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'pro_subscription', 'app': 'models', 'indexes': [Index(fields=['status', 'id']), Index(fields=['user_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='SUBSCRIPTION: SUBSCRIPTION\nSETTLEMENT: SETTLEMENT', enum_type=PaymentKind, max_length=16)),
                ('status', fields.CharEnumField(description='SUCCEEDED: SUCCEEDED\nFAILED: FAILED\nREVERSED: REVERSED', enum_type=PaymentStatus, max_length=16)),
                ('amount_cents', fields.BigIntField()),
                ('currency', fields.CharField(max_length=3)),
                ('stripe_object_id', fields.CharField(max_length=255)),
                ('event_id', fields.CharField(unique=True, max_length=255)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('debt', fields.ForeignKeyField('models.Debt', source_field='debt_id', null=True, db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
                ('pro_subscription', fields.ForeignKeyField('models.ProSubscription', source_field='pro_subscription_id', null=True, db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'payment', 'app': 'models', 'unique_together': (('stripe_object_id', 'status'),), 'indexes': [Index(fields=['user_id', 'id'])], 'pk_attr': 'id', 'table_description': 'The payment history: one row per money movement, never updated.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('type', fields.CharField(max_length=128)),
                ('status', fields.CharEnumField(default=WebhookEventStatus.RECEIVED, description='RECEIVED: RECEIVED\nPROCESSING: PROCESSING\nPROCESSED: PROCESSED\nIGNORED: IGNORED\nRETRYING: RETRYING\nDEAD: DEAD', enum_type=WebhookEventStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('failures', fields.IntField(default=0)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('waiting_for', fields.CharField(null=True, max_length=1024)),
                ('livemode', fields.BooleanField(default=False)),
                ('api_version', fields.CharField(null=True, max_length=64)),
                ('created', fields.BigIntField(null=True)),
                ('payload', fields.TextField(unique=False)),
            ],
            options={'table': 'webhook_event', 'app': 'models', 'indexes': [Index(fields=['status', 'received_at']), Index(fields=['status', 'next_attempt_at']), Index(fields=['type', 'received_at'])], 'pk_attr': 'id', 'table_description': 'The inbox: every stored Stripe event with its raw payload, as received.'},
            bases=['Model'],
        ),
    ]
