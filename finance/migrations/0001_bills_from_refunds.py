# The bill models move from refunds to finance without touching the database: this migration only
# tells Django's state that finance now owns the tables refunds created (same db_table); refunds 0007
# drops them from refunds' state; finance 0002 renames the tables to finance_* and moves the content
# types (so permissions and admin log entries keep pointing at the same rows).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("refunds", "0006_refund_gateway_unknown"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='BillDiscrepancy',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('bill_date', models.DateField(db_index=True)),
                    ('gateway', models.CharField(max_length=16)),
                    ('kind', models.CharField(choices=[('missing_local', 'In the bill, not settled here'), ('missing_remote', 'Settled here, in no bill'), ('amount_mismatch', 'Amount differs'), ('status_mismatch', 'Status differs'), ('total_mismatch', 'Day total differs'), ('foreign', 'Names another merchant or app')], max_length=16)),
                    ('subject', models.CharField(default='payment', help_text='payment, refund or total', max_length=8)),
                    ('reference', models.CharField(help_text='out_trade_no (payment_no), out_refund_no (refund_no), or day:figure for a total (2026-05-01:fees).', max_length=64)),
                    ('our_amount_fen', models.BigIntegerField(blank=True, null=True)),
                    ('their_amount_fen', models.BigIntegerField(blank=True, null=True)),
                    ('our_status', models.CharField(blank=True, max_length=16)),
                    ('their_status', models.CharField(blank=True, max_length=16)),
                    ('status', models.CharField(choices=[('open', 'Open'), ('assigned', 'Assigned'), ('resolved', 'Resolved'), ('held', 'Held')], db_index=True, default='open', max_length=8)),
                    ('held_until', models.DateField(blank=True, help_text="Held until this day's bill is reconciled.", null=True)),
                    ('resolution_note', models.TextField(blank=True)),
                    ('resolved_at', models.DateTimeField(blank=True, null=True)),
                    ('auto_repaired', models.BooleanField(default=False)),
                    ('first_seen', models.DateTimeField()),
                    ('last_seen', models.DateTimeField()),
                    ('seen_token', models.CharField(blank=True, help_text='The run attempt that last found it.', max_length=32)),
                    ('assigned_to', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('resolved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'verbose_name': 'bill discrepancy',
                    'verbose_name_plural': 'bill discrepancies',
                    'db_table': 'refunds_billdiscrepancy',
                    'ordering': ('-bill_date', 'gateway', 'kind', 'reference'),
                },
            ),
            migrations.CreateModel(
                name='BillDiscrepancyEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('action', models.CharField(max_length=64)),
                    ('from_status', models.CharField(blank=True, max_length=32)),
                    ('to_status', models.CharField(blank=True, max_length=32)),
                    ('actor', models.CharField(max_length=80)),
                    ('reason', models.CharField(blank=True, max_length=255)),
                    ('data', models.JSONField(blank=True, default=dict)),
                    ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                    ('discrepancy', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='events', to='finance.billdiscrepancy')),
                ],
                options={
                    'verbose_name': 'bill discrepancy event',
                    'verbose_name_plural': 'bill discrepancy events',
                    'db_table': 'refunds_billdiscrepancyevent',
                    'ordering': ('id',),
                    'abstract': False,
                },
            ),
            migrations.CreateModel(
                name='BillLine',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('gateway', models.CharField(max_length=16)),
                    ('bill_date', models.DateField()),
                    ('kind', models.CharField(max_length=8)),
                    ('reference', models.CharField(help_text='out_trade_no (payments) or out_refund_no (refunds).', max_length=64)),
                    ('out_trade_no', models.CharField(max_length=64)),
                    ('amount_fen', models.BigIntegerField()),
                    ('status', models.CharField(max_length=16)),
                    ('occurred_at', models.DateTimeField()),
                    ('gateway_trade_no', models.CharField(blank=True, max_length=64)),
                    ('fee_fen', models.BigIntegerField(default=0, help_text="The gateway's fee: > 0 kept on a payment, < 0 given back with a refund.")),
                    ('identity', models.JSONField(blank=True, default=dict, help_text='Whose line it says it is: app_id, merchant_id, seller_id, sub_app_id.')),
                ],
                options={
                    'verbose_name': 'bill line',
                    'verbose_name_plural': 'bill lines',
                    'db_table': 'refunds_billline',
                    'ordering': ('bill_date', 'id'),
                    'indexes': [models.Index(fields=['gateway', 'kind', 'reference'], name='bill_line_reference'), models.Index(fields=['kind', 'reference'], name='bill_line_kind_reference')],
                    'constraints': [models.UniqueConstraint(fields=('gateway', 'bill_date', 'kind', 'reference'), name='bill_line_once')],
                },
            ),
            migrations.CreateModel(
                name='BillRun',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('gateway', models.CharField(max_length=16)),
                    ('bill_date', models.DateField()),
                    ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], db_index=True, default='pending', max_length=8)),
                    ('counts', models.JSONField(blank=True, default=dict, help_text='Bill lines, local rows, discrepancies by kind.')),
                    ('attempts', models.PositiveIntegerField(default=0)),
                    ('token', models.CharField(blank=True, help_text='The current attempt; marks what it has seen.', max_length=32)),
                    ('worker', models.CharField(blank=True, max_length=80)),
                    ('lease_until', models.DateTimeField(blank=True, null=True)),
                    ('started_at', models.DateTimeField(blank=True, null=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('error', models.TextField(blank=True)),
                    ('totals', models.JSONField(blank=True, default=dict, help_text="Settlement check, fen: the bill's own totals, ours on the same basis, the sums of its lines.")),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                ],
                options={
                    'verbose_name': 'bill reconciliation run',
                    'verbose_name_plural': 'bill reconciliation runs',
                    'db_table': 'refunds_billrun',
                    'ordering': ('-bill_date', 'gateway'),
                    'constraints': [models.UniqueConstraint(fields=('gateway', 'bill_date'), name='bill_run_once_per_day')],
                },
            ),
            migrations.AddIndex(
                model_name='billdiscrepancy',
                index=models.Index(fields=['gateway', 'bill_date', 'status'], name='bill_discrepancy_day'),
            ),
            migrations.AddConstraint(
                model_name='billdiscrepancy',
                constraint=models.UniqueConstraint(fields=('gateway', 'kind', 'reference'), name='bill_discrepancy_once'),
            ),
            ],
            database_operations=[],
        ),
    ]
