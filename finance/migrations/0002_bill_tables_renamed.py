# The bill tables take finance's names (refunds_bill* -> finance_bill*), and their content types move
# to app_label "finance": permissions (auth_permission), group grants and admin log entries point at
# content type ids, so moving the rows (not creating new ones) keeps every grant and log entry.

from django.db import migrations

MODELS = ("billrun", "billline", "billdiscrepancy", "billdiscrepancyevent")


def content_types_to(app_label, from_label):
    def move(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        for model in MODELS:
            old = ContentType.objects.filter(app_label=from_label, model=model).first()
            if old is None:
                continue  # a fresh database: post_migrate creates finance's rows
            # a row for the new label made by an earlier post_migrate has nothing pointing at it yet
            ContentType.objects.filter(app_label=app_label, model=model).delete()
            old.app_label = app_label
            old.save(update_fields=["app_label"])

    return move


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('finance', '0001_bills_from_refunds'),
        ('refunds', '0007_bills_to_finance'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='billdiscrepancy',
            table=None,
        ),
        migrations.AlterModelTable(
            name='billdiscrepancyevent',
            table=None,
        ),
        migrations.AlterModelTable(
            name='billline',
            table=None,
        ),
        migrations.AlterModelTable(
            name='billrun',
            table=None,
        ),
        migrations.RunPython(content_types_to("finance", "refunds"), content_types_to("refunds", "finance")),
    ]
