# The bill models now belong to finance (finance 0001 took them over in its state, same tables):
# drop them from refunds' state only; the tables stay.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('refunds', '0006_refund_gateway_unknown'),
        ('finance', '0001_bills_from_refunds'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.RemoveField(
                model_name='billdiscrepancy',
                name='assigned_to',
            ),
            migrations.RemoveField(
                model_name='billdiscrepancy',
                name='resolved_by',
            ),
            migrations.RemoveField(
                model_name='billdiscrepancyevent',
                name='discrepancy',
            ),
            migrations.DeleteModel(
                name='BillLine',
            ),
            migrations.DeleteModel(
                name='BillRun',
            ),
            migrations.DeleteModel(
                name='BillDiscrepancy',
            ),
            migrations.DeleteModel(
                name='BillDiscrepancyEvent',
            ),
            ],
            database_operations=[],
        ),
    ]
