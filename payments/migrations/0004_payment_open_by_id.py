from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # built without locking writes to the payments table (CREATE INDEX CONCURRENTLY: outside a transaction)
    atomic = False

    dependencies = [
        ("orders", "0001_initial"),
        ("payments", "0003_payment_inbox_idempotency"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="payment",
            index=models.Index(
                condition=models.Q(("status__in", ("created", "pending"))), fields=["id"], name="payment_open_by_id"
            ),
        ),
    ]
