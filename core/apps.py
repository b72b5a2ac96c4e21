"""The ``core`` app's configuration."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kernel (no models of its own, only abstract ones): its templatetags, formats and static files."""

    name = "core"
    verbose_name = "Core"
    default_auto_field = "django.db.models.BigAutoField"
