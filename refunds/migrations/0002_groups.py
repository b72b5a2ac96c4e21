"""Back-office groups: finance, support and operations, with their permissions.

Permissions are normally created post-migrate; ``create_permissions`` makes them exist now so
this migration can assign them. Idempotent: running it again adds nothing twice. One extra
permission, ``payments.replay_gatewaynotification``, has no model Meta entry (the payments app
is not the back office's to change); it is created here.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

AUDITED = {
    "payments": ["payment", "paymentevent", "gatewaynotification", "wechatidentity"],
    "refunds": ["refund", "refundevent"],
    "orders": ["order", "orderevent"],
    "wallets": ["wallet", "wallettransaction"],
    "lockers": ["lockerevent"],
}
VIEW_ALL = [(app, f"view_{model}") for app, models in AUDITED.items() for model in models]
REPLAY = ("payments", "replay_gatewaynotification", "gatewaynotification", "Can replay gateway notifications")

GROUPS = {
    "finance": [
        *VIEW_ALL,
        ("refunds", "approve_refund"),
        ("refunds", "resolve_abnormal_refund"),
        ("refunds", "export_finance"),
        ("payments", "replay_gatewaynotification"),
    ],
    "support": [*VIEW_ALL, ("refunds", "request_refund")],
    "operations": [
        *[("lockers", f"{verb}_{model}") for model in ("cabinet", "compartment", "priceplan") for verb in ("add", "change", "view")],
        ("lockers", "view_pickupcode"),
        ("lockers", "view_lockerevent"),
    ],
}


def create_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True  # the historical registry has none
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    app_label, codename, model, name = REPLAY
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    Permission.objects.get_or_create(content_type=content_type, codename=codename, defaults={"name": name})
    for group_name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        perms = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in wanted]
        group.permissions.add(*perms)


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("payments", "0003_payment_inbox_idempotency"),
        ("orders", "0001_initial"),
        ("wallets", "0002_ledger_append_only"),
        ("lockers", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
