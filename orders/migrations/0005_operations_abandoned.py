"""The operations group works the abandoned-rentals task list: it sees the abandoned rentals (not every order)
and may open and clear one's compartment (``orders.clear_abandoned``). Finance and support see the task list
too. Idempotent, like ``refunds/migrations/0002_groups.py``."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "operations": [("orders", "view_abandonedrental"), ("orders", "clear_abandoned")],
    "finance": [("orders", "view_abandonedrental")],
    "support": [("orders", "view_abandonedrental")],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("orders")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True  # the historical registry has none
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = original
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group_name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        perms = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in wanted]
        group.permissions.add(*perms)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0004_overtime_abandoned"),
        ("refunds", "0002_groups"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
