"""Finance and support see WeChat Pay Score service orders and their events (read-only), like payments."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWS = ("view_serviceorder", "view_serviceorderevent")


def grant_views(apps, schema_editor):
    app_config = apps.get_app_config("payments")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True  # the historical registry has none
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = original
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permissions = Permission.objects.filter(content_type__app_label="payments", codename__in=VIEWS)
    for name in ("finance", "support"):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0007_payscore_service_order"),
        ("refunds", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant_views, migrations.RunPython.noop)]
