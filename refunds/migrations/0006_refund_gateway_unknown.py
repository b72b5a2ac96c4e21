"""Refunds the gateway does not know (``gateway_unknown_since``) and the finance permission to send one again.

The finance group gets ``refunds.resend_refund`` (created here, as ``0002_groups`` does for its permissions).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def grant_resend(apps, schema_editor):
    app_config = apps.get_app_config("refunds")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True  # the historical registry has none
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = original
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permission = Permission.objects.get(content_type__app_label="refunds", codename="resend_refund")
    group, _ = Group.objects.get_or_create(name="finance")
    group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0005_bill_line_identity"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="refund",
            options={
                "ordering": ("-id",),
                "permissions": [
                    ("approve_refund", "Can approve or reject refunds"),
                    ("resolve_abnormal_refund", "Can resolve abnormal refunds"),
                    ("resend_refund", "Can send a processing refund to its gateway again"),
                    ("request_refund", "Can request refunds for customers"),
                    ("export_finance", "Can export finance data"),
                ],
                "verbose_name": "refund",
                "verbose_name_plural": "refunds",
            },
        ),
        migrations.AddField(
            model_name="refund",
            name="gateway_unknown_since",
            field=models.DateTimeField(
                blank=True,
                help_text="The gateway said it does not know this processing refund (first time); cleared by its next word.",
                null=True,
            ),
        ),
        migrations.RunPython(grant_resend, migrations.RunPython.noop),
    ]
