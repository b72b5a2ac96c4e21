"""The ``web`` app's configuration."""

from django.apps import AppConfig


class WebConfig(AppConfig):
    """The customer pages (server-rendered checkout): the top floor, on the services of every app."""

    name = "web"
    verbose_name = "Customer pages"
    default_auto_field = "django.db.models.BigAutoField"
